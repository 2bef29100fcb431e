"""Signatures on internal requests: HMAC-SHA256 with CLUSTER_SECRET over method, path and query, time, nonce
and the body's digest.

Invariant: a request is accepted only within CLOCK_WINDOW_SECONDS of its time and only with the exact method,
target and body it was signed for; and once, unless its caller says a replay changes nothing (verify's `once`):
the nonce register that refuses replays is shared by every process of a node.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
import time
from pathlib import Path

from countdb.errors import Unauthenticated

PROTOCOL_VERSION = 1
CLOCK_WINDOW_SECONDS = 30
TIME_HEADER = "X-Count-Time"
NONCE_HEADER = "X-Count-Nonce"
SIGNATURE_HEADER = "X-Count-Signature"
NODE_HEADER = "X-Count-Node"


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _mac(secret: str, method: str, target: str, stamp: str, nonce: str, digest: str, node: str) -> str:
    message = "\n".join((f"count/{PROTOCOL_VERSION}", method.upper(), target, stamp, nonce, digest, node))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign(secret: str, method: str, target: str, body: bytes, node: int, now: float | None = None) -> dict[str, str]:
    """Headers that authenticate `method target` (path plus query string, as sent) with `body` from `node`."""
    stamp, nonce = str(int(time.time() if now is None else now)), os.urandom(16).hex()
    return {TIME_HEADER: stamp, NONCE_HEADER: nonce, NODE_HEADER: str(node),
            SIGNATURE_HEADER: _mac(secret, method, target, stamp, nonce, body_digest(body), str(node))}


class Verifier:
    """Checks signatures and remembers nonces (in node_state/, so every worker of the node refuses a replay)."""

    def __init__(self, secret: str, nonce_db: Path):
        self.secret = secret
        self._db = sqlite3.connect(nonce_db, isolation_level=None, check_same_thread=False, timeout=10)
        # NOTE: a lost nonce register (power loss) only reopens a 30-second replay window: no fsync needed.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen INTEGER NOT NULL)")
        self._lock = threading.Lock()
        self._pruned = 0.0

    def verify(self, method: str, target: str, headers, body: bytes, now: float | None = None,
               once: bool = True) -> int:
        """The signing node's number; raises Unauthenticated saying what is wrong. With `once`, a nonce already
        used on this node is refused (a replay)."""
        stamp, nonce = headers.get(TIME_HEADER), headers.get(NONCE_HEADER)
        signature, node = headers.get(SIGNATURE_HEADER), headers.get(NODE_HEADER)
        if not (stamp and nonce and signature and node):
            raise Unauthenticated("internal endpoint: signature headers missing (requests must come from a "
                                  "cluster node sharing CLUSTER_SECRET)")
        now = time.time() if now is None else now
        if not stamp.isdigit() or abs(now - int(stamp)) > CLOCK_WINDOW_SECONDS:
            raise Unauthenticated(f"internal endpoint: request time is more than {CLOCK_WINDOW_SECONDS} s "
                                  "from this node's clock")
        expected = _mac(self.secret, method, target, stamp, nonce, body_digest(body), node)
        if not hmac.compare_digest(expected, signature) or not node.isdigit():
            raise Unauthenticated("internal endpoint: bad signature (is CLUSTER_SECRET the same on every node?)")
        if once:
            self._remember(nonce, int(now))
        return int(node)

    def _remember(self, nonce: str, now: int) -> None:
        with self._lock:
            if now - self._pruned > CLOCK_WINDOW_SECONDS:
                self._db.execute("DELETE FROM nonces WHERE seen < ?", (now - 2 * CLOCK_WINDOW_SECONDS,))
                self._pruned = now
            try:
                self._db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, now))
            except sqlite3.IntegrityError:
                raise Unauthenticated("internal endpoint: replayed request (nonce already used)") from None

    def close(self) -> None:
        self._db.close()
