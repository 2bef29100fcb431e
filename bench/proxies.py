"""The repository's nginx.conf and haproxy.cfg made runnable on loopback, with only the substitutions an operator
makes (the upstream servers, the certificate paths, the listen ports; nginx also gets temp paths under the run's
folder), for the tests (tests/support/proxies.py) and the benchmark's rolling restart (bench/rolling.py)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NGINX_CONF = REPO / "nginx" / "nginx.conf"
HAPROXY_CFG = REPO / "nginx" / "haproxy.cfg"


def substitute(text: str, pattern: str, replacement: str, count: int) -> str:
    """re.sub that insists on `count` matches, so a renamed directive fails here, not silently later."""
    result, made = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert made == count, f"expected {count} match(es) of {pattern!r} in the proxy config, found {made}"
    return result


@dataclass(frozen=True)
class Tls:
    cert: Path
    key: Path
    pem: Path  # certificate then key, as HAProxy wants them


def make_tls(folder: Path, openssl: str = "openssl") -> Tls:
    """A throw-away self-signed certificate for localhost and 127.0.0.1, in `folder`."""
    cert, key = folder / "count.crt", folder / "count.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    pem = folder / "count.pem"
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return Tls(cert, key, pem)


def render_nginx_conf(folder: Path, backends: list[str], tls: Tls, http_port: int, https_port: int) -> Path:
    text = NGINX_CONF.read_text()
    servers = "".join(f"\\g<1>server {backend} \\g<2>\n" for backend in backends)
    text = substitute(text, r"^(\s*)server count-1:8080 (.*)\n", servers, 1)
    text = substitute(text, r"^\s*server count-[23]:8080 .*\n", "", 2)
    text = substitute(text, r"^(\s*ssl_certificate\s+)/etc/ssl/certs/count\.crt;", rf"\g<1>{tls.cert};", 1)
    text = substitute(text, r"^(\s*ssl_certificate_key\s+)/etc/ssl/private/count\.key;", rf"\g<1>{tls.key};", 1)
    text = substitute(text, r"listen 80;", f"listen 127.0.0.1:{http_port};", 1)
    text = substitute(text, r"listen 443 ", f"listen 127.0.0.1:{https_port} ", 1)
    temp_paths = "".join(f"    {kind}_temp_path {folder / kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = substitute(text, r"^http \{\n", "http {\n" + temp_paths, 1)
    conf = folder / "nginx.conf"
    conf.write_text(text)
    return conf


def render_haproxy_cfg(folder: Path, backends: list[str], tls: Tls, http_port: int, https_port: int) -> Path:
    text = HAPROXY_CFG.read_text()
    servers = "".join(f"\\g<1>server count-{number} {backend}\n" for number, backend in enumerate(backends, 1))
    text = substitute(text, r"^(\s*)server count-1 count-1:8080\n", servers, 1)
    text = substitute(text, r"^\s*server count-[23] count-[23]:8080\n", "", 2)
    text = substitute(text, r"^(\s*bind .* crt )/etc/ssl/certs/count\.pem ", rf"\g<1>{tls.pem} ", 1)
    text = substitute(text, r"bind :80$", f"bind 127.0.0.1:{http_port}", 1)
    text = substitute(text, r"bind :443 ", f"bind 127.0.0.1:{https_port} ", 1)
    cfg = folder / "haproxy.cfg"
    cfg.write_text(text)
    return cfg


def nginx_globals(folder: Path) -> str:
    """-g directives: foreground, pid and error log in the test's folder, workers as the current user."""
    directives = f"daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'} info;"
    if os.geteuid() == 0:
        # As root, nginx would run its workers as `nobody`, which cannot enter pytest's 0700 tmp folders.
        directives += " user root;"
    return directives


def nginx_command(conf: Path, folder: Path, *extra: str, nginx: str = "nginx") -> list[str]:
    return [nginx, "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"),
            "-g", nginx_globals(folder), *extra]
