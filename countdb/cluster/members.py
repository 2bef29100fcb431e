"""Membership: which nodes are up, as this node's cluster agent last saw them (node_state/cluster/members.json).

Invariant: health is derived from the time of last contact, never stored as a flag, so a stale file (an agent
that stopped) makes peers look down, not up. Workers share the file; a peer that failed a request in this
worker is also treated as down here for one heartbeat interval.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from countdb.datadir import fsync_dir
from countdb.errors import Unavailable

MEMBERS_FILE = "members.json"
RELOAD_SECONDS = 0.2


class MinorityError(Unavailable):
    """This node sees fewer than a majority of CLUSTER_NODES: it refuses writes so a partition can't diverge."""


@dataclass(frozen=True)
class Member:
    node: int
    address: str
    last_contact: float  # Unix seconds of the last successful heartbeat; 0: never
    protocol: int | None
    error: str = ""
    caught_up: bool = False  # it holds every point acknowledged for its series, as far as it can tell (agent.py)

    def to_json(self) -> dict:
        return {"node": self.node, "address": self.address, "last_contact": self.last_contact,
                "protocol": self.protocol, "error": self.error, "caught_up": self.caught_up}


def write_members(folder: Path, members: list[Member]) -> None:
    """Atomically replace the membership file (the agent's only output to the workers)."""
    temporary = folder / f".{MEMBERS_FILE}.{os.getpid()}"
    temporary.write_text(json.dumps({"written": time.time(), "members": [m.to_json() for m in members]}))
    os.replace(temporary, folder / MEMBERS_FILE)
    fsync_dir(folder)


class Membership:
    """The members as one worker sees them. Thread-safe."""

    def __init__(self, folder: Path, nodes: tuple[str, ...], self_node: int, failure_timeout_seconds: float,
                 heartbeat_interval_seconds: float, voters: Callable[[], frozenset[int]] | None = None):
        """`voters`: the nodes a majority is counted over (the target ring's, cluster/layout.py); all by default."""
        self.path = folder / MEMBERS_FILE
        self.nodes = nodes
        self.voters = voters or (lambda: frozenset(range(len(nodes))))
        self.self_node = self_node
        self.failure_timeout_seconds = failure_timeout_seconds
        self.heartbeat_interval_seconds = heartbeat_interval_seconds
        self._lock = threading.Lock()
        self._loaded_at = 0.0
        self._mtime = 0.0
        self._members: dict[int, Member] = {}
        self._suspects: dict[int, float] = {}

    def members(self, fresh: bool = False) -> dict[int, Member]:
        """As the agent's file said at most RELOAD_SECONDS ago (`fresh`: as it says now)."""
        with self._lock:
            now = time.monotonic()
            if fresh or now - self._loaded_at >= RELOAD_SECONDS:
                self._loaded_at = now
                self._reload()
            return self._members

    def _reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
            if mtime == self._mtime:
                return
            listed = json.loads(self.path.read_text())["members"]
        except (OSError, ValueError, KeyError):
            return
        self._mtime = mtime
        self._members = {entry["node"]: Member(**entry) for entry in listed}

    def is_up(self, node: int, now: float | None = None) -> bool:
        """Itself always; a peer when its last heartbeat is within FAILURE_TIMEOUT and no request in this
        worker failed on it in the last heartbeat interval. A peer that looks down in a view up to RELOAD_SECONDS
        old is checked against the agent's file as it is now: right after a node came back, a write that skipped
        it fell short of its quorum when another owner stopped (a rolling restart), and a stale view refused
        writes as a minority right after a cluster formed."""
        if node == self.self_node:
            return True
        now = time.time() if now is None else now
        if self._suspects.get(node, 0.0) > now:
            return False
        return self._heard_from(self.members().get(node), now) or \
            self._heard_from(self.members(fresh=True).get(node), now)

    def _heard_from(self, member: Member | None, now: float) -> bool:
        return member is not None and now - member.last_contact <= self.failure_timeout_seconds

    def caught_up(self, node: int) -> bool:
        """Whether `node` (this one included) last said it holds every point acknowledged for its series: a
        one-series read may then take its copy alone (cluster/reads.py)."""
        member = self.members().get(node)
        return member is not None and member.caught_up

    def up_nodes(self) -> list[int]:
        now = time.time()
        return [node for node in range(len(self.nodes)) if self.is_up(node, now)]

    def suspect(self, node: int) -> None:
        """A request to `node` failed: route around it in this worker until the next heartbeat could notice."""
        self._suspects[node] = time.time() + self.heartbeat_interval_seconds

    def _reached(self) -> tuple[int, int]:
        voters = self.voters()
        return len(voters.intersection(self.up_nodes())), len(voters)

    def has_majority(self) -> bool:
        up, voters = self._reached()
        return up > voters // 2

    def require_majority(self) -> None:
        """Raise MinorityError unless a majority of the cluster's nodes (this node included) is up."""
        up, voters = self._reached()
        if up <= voters // 2:
            raise MinorityError(f"this node is in a minority: it reaches {up} of {voters} cluster "
                                f"nodes (itself included), so it refuses writes until it reaches a majority "
                                f"again; reads answer from what it holds")
