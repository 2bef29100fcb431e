"""PeerClient: signed HTTP requests from this node to the others, each with a timeout and a cause when it fails.

Invariant: every internal request is signed (auth.py) and bounded in time; a failure is a PeerError naming the
peer and why, never a hang or a bare urllib3 exception.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import orjson
import urllib3

from countdb.cluster.auth import sign
from countdb.errors import CountError

FAN_OUT_THREADS = 16
KEPT_CONNECTIONS_PER_PEER = 32  # above the fan-out pool and the agent's own calls: every connection is reused
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


class PeerResponse:
    """A peer's 2xx answer: its body and, for JSON answers, json()."""

    def __init__(self, content: bytes):
        self.content = content

    def json(self):
        return orjson.loads(self.content)


class PeerClient:
    """One per process. Thread-safe: urllib3 keeps a pool of connections per peer.
    NOTE: urllib3 rather than requests for these calls: a tenth of a small write's cluster cost was requests'
    own work per call (563 against 217 µs of CPU measured), and a peer call needs none of its extras."""

    def __init__(self, nodes: tuple[str, ...], self_node: int, secret: str, timeout_seconds: float,
                 self_address: str | None = None):
        self.nodes = nodes
        self.self_node = self_node
        self.secret = secret
        self.timeout_seconds = timeout_seconds
        self.self_address = self_address or nodes[self_node]
        self.pool = ThreadPoolExecutor(FAN_OUT_THREADS, thread_name_prefix="peer")
        self._http = urllib3.PoolManager(num_pools=len(nodes) + 1, maxsize=KEPT_CONNECTIONS_PER_PEER, retries=False)

    def address(self, node: int) -> str:
        return self.self_address if node == self.self_node else self.nodes[node]

    def call(self, node: int, method: str, path: str, body: bytes = b"", params: dict | None = None,
             timeout_seconds: float | None = None, headers: dict | None = None) -> PeerResponse:
        """`method path?params` on `node`, signed; the 2xx response, else PeerError."""
        target = f"{path}?{urlencode(params)}" if params else path
        signed = {**(headers or {}), **sign(self.secret, method, target, body, self.self_node)}
        address, seconds = self.address(node), timeout_seconds or self.timeout_seconds
        try:
            response = self._http.request(method, f"http://{address}{target}", body=body, headers=signed,
                                          timeout=urllib3.Timeout(connect=seconds, read=seconds))
        except urllib3.exceptions.TimeoutError:
            raise PeerError(node, address, f"no answer within {seconds:g} s") from None
        except urllib3.exceptions.HTTPError as error:
            raise PeerError(node, address, f"unreachable ({type(error).__name__})") from None
        if not 200 <= response.status < 300:
            raise PeerError(node, address, f"HTTP {response.status}: {_error_text(response.data)}", response.status)
        return PeerResponse(response.data)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._http.clear()


def _error_text(body: bytes) -> str:
    try:
        return str(orjson.loads(body).get("error", ""))[:300]
    except (orjson.JSONDecodeError, AttributeError):
        return body.decode("utf-8", "replace")[:300]
