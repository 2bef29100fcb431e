"""GET / and /console/{path}: the web console's static files, read once from the package at start.

Invariant: only files that exist under countdb/api/console_static when the app is built are served (a fixed
table, so no request path can reach outside it); vendored files are immutable, the rest carry an ETag."""

from __future__ import annotations

import hashlib
from importlib import resources

import falcon

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".png": "image/png", "": "text/plain; charset=utf-8"}


def _load_files() -> dict[str, tuple[bytes, str, str]]:
    """{relative path: (bytes, content type, etag)} of every file in the package's console directory."""
    files = {}
    root = resources.files("countdb.api") / "console_static"

    def walk(node, prefix: str) -> None:
        for child in node.iterdir():
            path = prefix + child.name
            if child.is_dir():
                walk(child, path + "/")
            else:
                suffix = "." + child.name.rpartition(".")[2] if "." in child.name else ""
                body = child.read_bytes()
                files[path] = (body, _TYPES.get(suffix, _TYPES[""]), hashlib.sha256(body).hexdigest()[:32])
    walk(root, "")
    return files

class ConsoleResource:
    def __init__(self):
        self.files = _load_files()

    def on_get(self, req: falcon.Request, resp: falcon.Response, path: str = "index.html") -> None:
        found = self.files.get(path)
        if found is None:
            raise falcon.HTTPNotFound()
        body, content_type, etag = found
        resp.content_type = content_type
        resp.etag = etag
        resp.cache_control = (["public", "max-age=31536000", "immutable"] if path.startswith("vendor/")
                              else ["no-cache"])
        if req.if_none_match and any(tag == etag for tag in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.data = body
