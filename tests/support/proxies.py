"""Real nginx and HAProxy for tests: the repository's files with only the substitutions an operator makes (the
upstream servers, the certificate paths, the listen ports; nginx also gets temp paths under the test's folder),
started on loopback against a deadline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from support.tools import require_tool

REPO = Path(__file__).resolve().parents[2]
NGINX_CONF = REPO / "nginx" / "nginx.conf"
HAPROXY_CFG = REPO / "nginx" / "haproxy.cfg"
START_DEADLINE_SECONDS = 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


def make_tls(folder: Path) -> Tls:
    """A throw-away self-signed certificate for localhost and 127.0.0.1, in `folder`."""
    openssl = require_tool("openssl")
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


def nginx_command(conf: Path, folder: Path, *extra: str) -> list[str]:
    return [require_tool("nginx"), "-p", str(folder), "-c", str(conf), "-e", str(folder / "error.log"),
            "-g", nginx_globals(folder), *extra]


@dataclass
class Proxy:
    name: str
    process: subprocess.Popen
    http_port: int
    https_port: int
    log_path: Path
    cert: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")[-10000:] if self.log_path.exists() else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
                raise AssertionError(f"{self.name} ignored SIGTERM:\n{self.log_text()}")


def https(proxy: Proxy, method: str, path: str, **kwargs) -> requests.Response:
    """A request through the proxy's TLS port, trusting the test certificate."""
    return requests.request(method, proxy.url + path, verify=str(proxy.cert), timeout=30, **kwargs)


def start_proxy(name: str, command: list[str], folder: Path, http_port: int, https_port: int,
                log_path: Path, cert: Path) -> Proxy:
    """Start the proxy and wait for its TLS port against a deadline; fail with its log if it does not come up."""
    with open(folder / "stdout.log", "ab") as stdout:
        process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True)
    proxy = Proxy(name, process, http_port, https_port, log_path, cert)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if process.poll() is not None:
            pytest.fail(f"{name} exited with {process.returncode} at start:\n{proxy.log_text()}\n"
                        f"{(folder / 'stdout.log').read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=0.5).close()
            return proxy
        except OSError:
            if time.monotonic() > deadline:
                proxy.stop()
                pytest.fail(f"{name} did not listen on {https_port} within {START_DEADLINE_SECONDS}s:\n"
                            f"{proxy.log_text()}")
            time.sleep(0.05)
