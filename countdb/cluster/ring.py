"""Ring: consistent-hash placement of series on nodes (SHA-256 of the key, 150 virtual nodes per node).

Invariant: pure data and pure functions of the member addresses, so every node computes the same owners for a
key. A node's number is its position in CLUSTER_NODES; a ring may leave some listed nodes out (`active`): nodes
being added or that left (cluster/layout.py), which then own nothing, while the numbers of the others stay put.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field

VIRTUAL_NODES = 150
HASH_SPACE = 1 << 64
CACHED_KEYS = 200_000
PARTITION_BITS = 8  # the replication module compares digests per partition: 256 slices of the hash space


def key_hash(key: str) -> int:
    """The first 8 bytes of SHA-256 of `key`, as an unsigned integer: a point on the ring."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def partition_of(key: str) -> int:
    """Which of the 2**PARTITION_BITS equal slices of the hash space `key` falls in."""
    return key_hash(key) >> (64 - PARTITION_BITS)


@dataclass(frozen=True)
class Ring:
    """`nodes` are CLUSTER_NODES entries; node numbers below are positions in that list; `active` own series."""

    nodes: tuple[str, ...]
    active: frozenset[int]
    tokens: tuple[int, ...] = field(repr=False)
    token_nodes: tuple[int, ...] = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False, hash=False)

    @classmethod
    def build(cls, nodes: tuple[str, ...] | list[str], active: frozenset[int] | None = None,
              virtual_nodes: int = VIRTUAL_NODES) -> "Ring":
        """The ring of `active` (positions in `nodes`; all of them by default)."""
        active = frozenset(range(len(nodes))) if active is None else frozenset(active)
        points = sorted((key_hash(f"{nodes[number]}#{i}"), number) for number in active for i in range(virtual_nodes))
        return cls(tuple(nodes), active, tuple(t for t, _ in points), tuple(n for _, n in points))

    @property
    def addresses(self) -> tuple[str, ...]:
        """The active nodes' addresses, in list order: what identifies this ring to other nodes."""
        return tuple(self.nodes[number] for number in sorted(self.active))

    def preference(self, key: str) -> tuple[int, ...]:
        """Every node, in the order the ring offers them for `key`: owners first, then handoff candidates."""
        # NOTE: cached: a request's keys repeat, and a node places every key of every request it coordinates.
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHED_KEYS:
                self._cache.clear()
            position = bisect.bisect_left(self.tokens, key_hash(key)) % len(self.tokens)
            found = self._cache[key] = self._walk(position, len(self.active))
        return found

    def owners(self, key: str, replication_factor: int) -> tuple[int, ...]:
        """The `replication_factor` distinct nodes that hold `key`."""
        return self.preference(key)[:replication_factor]

    def owner_sets(self, replication_factor: int) -> frozenset[frozenset[int]]:
        """Every set of nodes that together own some part of the hash space (each key's owners are one of them)."""
        found = self._cache.get(("owner sets", replication_factor))
        if found is None:
            found = self._cache[("owner sets", replication_factor)] = frozenset(
                frozenset(self._walk(position, replication_factor)) for position in range(len(self.tokens)))
        return found

    def shares(self, replication_factor: int) -> list[float]:
        """Each node's share of all copies: the fraction of the hash space it owns, times the copies it holds."""
        share = [0.0] * len(self.nodes)
        previous = self.tokens[-1] - HASH_SPACE
        for position, token in enumerate(self.tokens):
            width = (token - previous) / HASH_SPACE
            for node in self._walk(position, replication_factor):
                share[node] += width / replication_factor
            previous = token
        return share

    def _walk(self, position: int, count: int) -> tuple[int, ...]:
        found: list[int] = []
        for step in range(len(self.tokens)):
            node = self.token_nodes[(position + step) % len(self.tokens)]
            if node not in found:
                found.append(node)
                if len(found) == count:
                    break
        return tuple(found)

