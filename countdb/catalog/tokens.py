"""Access tokens (table access_tokens): made, listed and revoked by `countdb token`, checked on every request
when AUTH_REQUIRED is on.

Invariant: a token's secret is never stored or logged; only its SHA-256 is, and a presented token is compared
with it by hmac.compare_digest. A token is `count_<token_id>_<secret>`: the id finds the row, the hash decides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from typing import Callable

from countdb.catalog.db import transaction
from countdb.errors import InvalidInput

SCOPES = ("admin", "read", "write")  # admin also grants read and write
PREFIX = "count_"
_TOKEN = re.compile(r"count_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_NO_HASH = hashlib.sha256(b"no such token").hexdigest()  # compared against when the id is unknown


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    name: str
    scopes: frozenset[str]
    created_ms: int
    revoked_ms: int | None = None

    def grants(self, scope: str) -> bool:
        """Whether this token may do what `scope` allows (admin allows everything)."""
        return self.revoked_ms is None and (scope in self.scopes or "admin" in self.scopes)


def parse_scopes(text: str) -> frozenset[str]:
    """'read,write' → {'read', 'write'}; InvalidInput naming the first unknown scope."""
    scopes = frozenset(s.strip().lower() for s in text.split(",") if s.strip())
    unknown = sorted(scopes - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"scopes: {', '.join(unknown) or 'none given'}; choose from {', '.join(SCOPES)}",
                           field="scopes")
    return scopes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(connection: sqlite3.Connection, name: str, scopes: frozenset[str],
                 token: str | None = None) -> tuple[str, TokenInfo]:
    """Store a new token; returns (the token, its row). The token is not recoverable afterwards.

    With `token` (one made on another node), that token is registered here instead of a new one, so one token
    works on every node of a cluster. Raises InvalidInput for a malformed token, CatalogError for a known id."""
    if not name.strip():
        raise InvalidInput("name: give the token a name (who or what uses it)", field="name")
    if token is None:
        token = f"{PREFIX}{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
    match = _TOKEN.fullmatch(token)
    if match is None:
        raise InvalidInput("token: not a Count access token (count_<12 hex digits>_<43 characters>)", field="token")
    token_id = match.group(1)
    info = TokenInfo(token_id, name.strip(), scopes, int(time.time() * 1000))
    with transaction(connection):
        connection.execute("INSERT INTO access_tokens (token_id, name, scopes, token_hash, created_ms) "
                           "VALUES (?, ?, ?, ?, ?)",
                           (token_id, info.name, ",".join(sorted(scopes)), hash_token(token), info.created_ms))
    return token, info


def list_tokens(connection: sqlite3.Connection) -> list[TokenInfo]:
    """Every token ever made, oldest first, revoked ones included."""
    rows = connection.execute("SELECT token_id, name, scopes, created_ms, revoked_ms FROM access_tokens "
                              "ORDER BY created_ms, token_id").fetchall()
    return [_info(row) for row in rows]


def revoke_tokens(connection: sqlite3.Connection, id_or_name: str) -> list[TokenInfo]:
    """Revoke the valid token with this id, or every valid token with this name; returns what was revoked
    (empty when nothing matched). Workers stop accepting it within their cache time (AUTH_CACHE_SECONDS)."""
    now = int(time.time() * 1000)
    with transaction(connection):
        rows = connection.execute("SELECT token_id, name, scopes, created_ms, revoked_ms FROM access_tokens "
                                  "WHERE (token_id = ? OR name = ?) AND revoked_ms IS NULL",
                                  (id_or_name, id_or_name)).fetchall()
        connection.executemany("UPDATE access_tokens SET revoked_ms = ? WHERE token_id = ?",
                               [(now, row[0]) for row in rows])
    return [_info(row[:4] + (now,)) for row in rows]


def find_token(connection: sqlite3.Connection, token: str) -> TokenInfo | None:
    """The valid token `token` is, or None (malformed, unknown, wrong secret or revoked)."""
    match = _TOKEN.fullmatch(token)
    row = None
    if match:
        row = connection.execute("SELECT token_id, name, scopes, created_ms, revoked_ms, token_hash "
                                 "FROM access_tokens WHERE token_id = ?", (match.group(1),)).fetchone()
    # NOTE: the hash is compared even for an unknown id, so the answer takes as long either way (issue 14).
    equal = hmac.compare_digest(hash_token(token), row[5] if row else _NO_HASH)
    if not (equal and row) or row[4] is not None:
        return None
    return _info(row[:5])


class TokenCache:
    """find_token with each answer (found or not) kept for `ttl_seconds`, per process: a request costs no
    catalog read, and a revocation takes effect within ttl_seconds. Thread-safe; at most MAX_ENTRIES kept."""

    MAX_ENTRIES = 4096

    def __init__(self, connect: Callable[[], sqlite3.Connection], ttl_seconds: float,
                 clock: Callable[[], float] = time.monotonic):
        self._connect = connect
        self._connection: sqlite3.Connection | None = None
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._answers: dict[str, tuple[float, TokenInfo | None]] = {}
        self._lock = threading.Lock()

    def find(self, token: str) -> TokenInfo | None:
        # NOTE: keyed by the token's hash, so the cache holds no secret and a dict lookup reveals nothing.
        key, now = hash_token(token), self._clock()
        with self._lock:
            cached = self._answers.get(key)
            if cached is not None and cached[0] > now:
                return cached[1]
            if self._connection is None:
                self._connection = self._connect()
            info = find_token(self._connection, token)
            if len(self._answers) >= self.MAX_ENTRIES:
                self._answers.clear()  # random guesses must not grow memory
            self._answers[key] = (now + self.ttl_seconds, info)
            return info

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


def _info(row) -> TokenInfo:
    token_id, name, scopes, created_ms, revoked_ms = row
    return TokenInfo(token_id, name, frozenset(scopes.split(",")), created_ms, revoked_ms)
