"""PeerClient: signed HTTP requests from this node to the others, each with a timeout and a cause when it fails.

Invariant: every internal request is signed (auth.py) and bounded in time; a failure is a PeerError naming the
peer and why, never a hang or a bare urllib3 exception.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import orjson
import urllib3
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import TimeoutError as NoAnswerInTime

from countdb.cluster.auth import sign
from countdb.errors import CountError

FAN_OUT_THREADS = 16
IDLE_CONNECTIONS_PER_PEER = 2 * FAN_OUT_THREADS
"""Connections kept open to each peer between calls: enough for the fan-out threads and the request threads
that relay a read themselves (at most THREADS per worker); more calls at once open extra connections, which are
closed after use (and urllib3 logs a warning that the pool is full)."""
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
    """One per process. Thread-safe: each peer's connections are kept in a urllib3 pool shared by the threads.

    urllib3 rather than requests (which wraps it): a write's copies are the hot internal calls, and requests'
    per-call preparation (sessions, hooks, cookie and header merging) cost about twice urllib3's whole call
    (docs/performance.md, *The cluster's write path*). urllib3 also reads no proxy or netrc from the environment:
    peers are reached directly, whatever HTTP(S)_PROXY a container's outbound traffic uses."""

    def __init__(self, nodes: tuple[str, ...], self_node: int, secret: str, timeout_seconds: float,
                 self_address: str | None = None):
        self.nodes = nodes
        self.self_node = self_node
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.self_address = self_address or nodes[self_node]
        self.pool = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="peer")
        self._connections: dict[str, urllib3.HTTPConnectionPool] = {}
        self._connections_lock = threading.Lock()

    def _connection_pool(self, address: str) -> urllib3.HTTPConnectionPool:
        pool = self._connections.get(address)
        if pool is None:
            with self._connections_lock:
                pool = self._connections.get(address)
                if pool is None:
                    host, port = address.rsplit(":", 1)
                    # NOTE: no retries: a failed copy is hinted or repaired by the caller, which knows what is safe
                    # to send again.
                    pool = self._connections[address] = urllib3.HTTPConnectionPool(
                        host.strip("[]"), int(port), maxsize=IDLE_CONNECTIONS_PER_PEER, block=False, retries=False)
        return pool

    def address(self, node: int) -> str:
        return self.self_address if node == self.self_node else self.nodes[node]

    def send(self, node: int, method: str, path: str, body: bytes = b"", params: dict | None = None,
             timeout_seconds: float | None = None, headers: dict | None = None,
             stream: bool = False) -> urllib3.BaseHTTPResponse:
        """`method path?params` on `node`, signed; its response whatever its HTTP status (read as it comes when
        `stream`: close it when done), else PeerError: unreachable, or no answer in time."""
        target = f"{path}?{urlencode(params, doseq=True)}" if params else path
        signed = {**(headers or {}), **sign(self.secret, method, target, body, self.self_node)}
        address = self.address(node)
        timeout = timeout_seconds or self.timeout_seconds
        try:
            return self._connection_pool(address).urlopen(method, target, body=body or None, headers=signed,
                                                          timeout=timeout, preload_content=not stream,
                                                          redirect=False)
        except NoAnswerInTime:
            raise PeerError(node, address, f"no answer within {timeout:g} s") from None
        except TransportError as error:
            raise PeerError(node, address, f"unreachable ({type(error).__name__})") from None

    def call(self, node: int, method: str, path: str, body: bytes = b"", params: dict | None = None,
             timeout_seconds: float | None = None, headers: dict | None = None) -> urllib3.BaseHTTPResponse:
        """`method path?params` on `node`, signed; the 2xx response (body read), else PeerError."""
        response = self.send(node, method, path, body, params, timeout_seconds, headers)
        if not 200 <= response.status < 300:
            raise PeerError(node, self.address(node), f"HTTP {response.status}: {_error_text(response.data)}",
                            response.status)
        return response

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        for pool in list(self._connections.values()):
            pool.close()


def _error_text(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("error", ""))[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return body[:300].decode(errors="replace")
