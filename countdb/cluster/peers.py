"""PeerClient: signed HTTP requests from this node to the others, each with a timeout and a cause when it fails.

Invariant: every internal request is signed (auth.py) and bounded in time; a failure is a PeerError naming the
peer and why, never a hang or a bare requests exception.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import requests

from countdb.cluster.auth import sign
from countdb.errors import CountError

FAN_OUT_THREADS = 16
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def local_address(bind_host: str, bind_port: int) -> str:
    """How a node's own processes reach its HTTP port: BIND_ADDRESS, with a wildcard host as loopback."""
    host = _WILDCARDS.get(bind_host, bind_host)
    return f"[{host}]:{bind_port}" if ":" in host else f"{host}:{bind_port}"


class PeerError(CountError):
    """A request to another node failed: `peer` is its number, `cause` says how (refused, timeout, HTTP status)."""

    def __init__(self, peer: int, address: str, cause: str, status: int | None = None):
        super().__init__(f"node {peer + 1} ({address}): {cause}", peer=peer, cause=cause, status=status)
        self.peer = peer
        self.cause = cause
        self.status = status


class PeerClient:
    """One per process. Thread-safe: a session per thread, since requests.Session is not safe to share."""

    def __init__(self, nodes: tuple[str, ...], self_node: int, secret: str, timeout_seconds: float,
                 self_address: str | None = None):
        self.nodes = nodes
        self.self_node = self_node
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.self_address = self_address or nodes[self_node]
        self.pool = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="peer")
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            # NOTE: peers are reached directly: no HTTP(S)_PROXY or ~/.netrc from the environment (a proxy set for
            # a container's outbound traffic would carry, or break, internal calls; and looking both up cost
            # every call 0.13 ms of a 0.6-ms loopback call, measured)
            session.trust_env = False
        return session

    def address(self, node: int) -> str:
        return self.self_address if node == self.self_node else self.nodes[node]

    def send(self, node: int, method: str, path: str, body: bytes = b"", params: dict | None = None,
             timeout_seconds: float | None = None, headers: dict | None = None,
             stream: bool = False) -> requests.Response:
        """`method path?params` on `node`, signed; its response whatever its HTTP status (read as it comes when
        `stream`), else PeerError: unreachable, or no answer in time."""
        target = f"{path}?{urlencode(params, doseq=True)}" if params else path
        signed = {**(headers or {}), **sign(self.secret, method, target, body, self.self_node)}
        address = self.address(node)
        try:
            return self._session().request(method, f"http://{address}{target}", data=body, headers=signed,
                                           timeout=timeout_seconds or self.timeout_seconds, stream=stream)
        except requests.Timeout:
            raise PeerError(node, address, f"no answer within {timeout_seconds or self.timeout_seconds:g} s") from None
        except requests.RequestException as error:
            raise PeerError(node, address, f"unreachable ({type(error).__name__})") from None

    def call(self, node: int, method: str, path: str, body: bytes = b"", params: dict | None = None,
             timeout_seconds: float | None = None, headers: dict | None = None) -> requests.Response:
        """`method path?params` on `node`, signed; the 2xx response, else PeerError."""
        response = self.send(node, method, path, body, params, timeout_seconds, headers)
        if not 200 <= response.status_code < 300:
            raise PeerError(node, self.address(node), f"HTTP {response.status_code}: {_error_text(response)}",
                            response.status_code)
        return response

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _error_text(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:300]
    except ValueError:
        return response.text[:300]
