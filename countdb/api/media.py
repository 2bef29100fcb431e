"""Request bodies (size limits, gzip) and JSON responses (orjson)."""

from __future__ import annotations

import zlib

import falcon
import orjson

from countdb.errors import InvalidInput, LimitExceeded, UnsupportedFormat

READ_CHUNK_BYTES = 1 << 20


def read_body(req: falcon.Request, max_bytes: int, passthrough: tuple[str, ...] = ()) -> bytes:
    """The request body, gunzipped if Content-Encoding says so; LimitExceeded past `max_bytes` (before or
    after decompression, so a gzip bomb is refused without being inflated). Encodings in `passthrough`
    (remote write's snappy) are left for the caller's decoder."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise _too_big(max_bytes)
    body = req.bounded_stream.read(length) if length is not None else _read_capped(req, max_bytes)
    encoding = (req.get_header("Content-Encoding") or "identity").strip().lower()
    if encoding in ("identity", "") or encoding in passthrough:
        return body
    if encoding in ("gzip", "x-gzip"):
        return _gunzip(body, max_bytes)
    raise UnsupportedFormat(f"Content-Encoding {encoding!r} is not supported (use gzip or none)")


def _read_capped(req: falcon.Request, max_bytes: int) -> bytes:
    """A body without Content-Length: chunked, read to its end when the server says wsgi.input ends there
    (gunicorn does; falcon's bounded_stream would read nothing of it), else none."""
    stream = req.stream if req.env.get("wsgi.input_terminated") else req.bounded_stream
    chunks, total = [], 0
    while True:
        chunk = stream.read(READ_CHUNK_BYTES)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise _too_big(max_bytes)
        chunks.append(chunk)


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as error:
        raise InvalidInput(f"body is not valid gzip: {error}", field="body") from None
    if len(data) > max_bytes:
        raise LimitExceeded(f"decompressed body is over the {max_bytes}-byte limit (MAX_BODY_BYTES)",
                            limit="max_body_bytes", maximum=max_bytes)
    if not inflater.eof:
        raise InvalidInput("gzip body is truncated", field="body")
    return data


def _too_big(max_bytes: int) -> LimitExceeded:
    return LimitExceeded(f"body is over the {max_bytes}-byte limit (MAX_BODY_BYTES)", limit="max_body_bytes",
                         maximum=max_bytes)


def media_type(req: falcon.Request) -> str:
    """The Content-Type without parameters, lower-cased; '' when absent."""
    return (req.content_type or "").split(";", 1)[0].strip().lower()


def send_json(resp: falcon.Response, document, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.data = orjson.dumps(document)


def int_param(req: falcon.Request, name: str, required: bool = True) -> int | None:
    """An integer query parameter (None when optional and absent); InvalidInput naming it otherwise."""
    raw = req.get_param(name)
    if raw is None or raw == "":
        if not required:
            return None
        raise InvalidInput(f"{name}: query parameter is required (milliseconds since the epoch)", field=name)
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name}: {raw!r} is not an integer number of milliseconds", field=name) from None
