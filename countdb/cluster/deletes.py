"""ReplicatedDeleter: a delete through any node is a tombstone stamped once by its coordinator and recorded on
every owner of the series (a hint holds it for an owner that is down), acknowledged at WRITE_CONSISTENCY.

Invariant: the tombstone replicates like data (hints, then anti-entropy), so a replica that missed the delete
never brings the deleted points back: every copy of them is older than the tombstone's stamp.
"""

from __future__ import annotations

from typing import Callable

import orjson

from countdb.cluster.coordinator import QuorumError, acknowledged, required_copies, run_here
from countdb.cluster.hints import HintStore
from countdb.cluster.members import Membership
from countdb.cluster.peers import PeerClient
from countdb.cluster.ring import Ring

DELETE_PATH = "/cluster/delete"

LocalDelete = Callable[[str, int, int, int], object]
"""Records a tombstone (series, start_ms, end_ms, seq) on this node, durably."""


class ReplicatedDeleter:
    def __init__(self, local_delete: LocalDelete, next_seq: Callable[[], int], ring: Ring, replication_factor: int,
                 consistency: str, membership: Membership, peers: PeerClient, hints: HintStore):
        self.local_delete = local_delete
        self.next_seq = next_seq
        self.ring = ring
        self.replication_factor = replication_factor
        self.consistency = consistency
        self.required = required_copies(consistency, replication_factor)
        self.membership = membership
        self.peers = peers
        self.hints = hints

    def delete(self, series: str, start_ms: int, end_ms: int) -> dict:
        """Record the delete on the owners; returns it as {series, start, end, seq}. MinorityError, QuorumError."""
        self.membership.require_majority()
        request = {"series": series, "start": start_ms, "end": end_ms, "seq": self.next_seq()}
        owners = self.ring.owners(series, self.replication_factor)
        up = [node for node in owners if self.membership.is_up(node)]
        failed = [node for node in owners if node not in up]
        copies = 0
        for node, call in [(node, self._send(node, request)) for node in up]:
            if acknowledged(call, node, self.membership):
                copies += 1
            else:
                failed.append(node)
        for target in failed:
            holder = next((node for node in self.ring.preference(series)
                           if node not in owners and self.membership.is_up(node)), None)
            if holder is not None and acknowledged(self._hint(holder, target, request), holder, self.membership):
                copies += self.consistency != "all"
        if copies < self.required:
            raise QuorumError(f"delete of {series!r}: fewer than {self.required} of {self.replication_factor} "
                              f"copies ({self.consistency}) could be recorded; retrying is safe")
        return request

    def _send(self, node: int, request: dict):
        if node == self.membership.self_node:
            return run_here(lambda: self.local_delete(request["series"], request["start"], request["end"],
                                                      request["seq"]))
        return self.peers.pool.submit(self.peers.call, node, "POST", DELETE_PATH, orjson.dumps(request))

    def _hint(self, holder: int, target: int, request: dict):
        if holder == self.membership.self_node:
            return run_here(lambda: self.hints.store_delete(target, request["seq"], request))
        return self.peers.pool.submit(self.peers.call, holder, "POST", "/cluster/hint", orjson.dumps(request),
                                      {"target": target, "kind": "delete"})
