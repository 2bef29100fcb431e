"""ReplicatedDeleter: a delete through any node is a tombstone stamped once by its coordinator and recorded on
every owner of the series (a hint holds it for an owner that is down), acknowledged at WRITE_CONSISTENCY.

Invariant: the tombstone replicates like data (hints, then anti-entropy), so a replica that missed the delete
never brings the deleted points back: every copy of them is older than the tombstone's stamp.
"""

from __future__ import annotations

from typing import Callable

import orjson

from countdb.cluster.coordinator import QuorumError, Replicas, acknowledged, copies, run_here

DELETE_PATH = "/cluster/delete"

LocalDelete = Callable[[str, int, int, int], object]
"""Records a tombstone (series, start_ms, end_ms, seq) on this node, durably."""


class ReplicatedDeleter:
    def __init__(self, local_delete: LocalDelete, next_seq: Callable[[], int], replicas: Replicas):
        self.local_delete = local_delete
        self.next_seq = next_seq
        self.replicas = replicas

    def delete(self, series: str, start_ms: int, end_ms: int) -> dict:
        """Record the delete on the owners; returns it as {series, start, end, seq}. MinorityError, QuorumError."""
        self.replicas.membership.require_majority()
        request = {"series": series, "start": start_ms, "end": end_ms, "seq": self.next_seq()}
        layout = self.replicas.layout()
        owners = layout.owners(series)
        up = [node for node in owners if self.replicas.membership.is_up(node)]
        failed = [node for node in owners if node not in up]
        stored: dict = {}  # node -> {0} for an owner that recorded it; (holder, owner) -> {0} for a hint
        for node, call in [(node, self._send(node, request)) for node in up]:
            if acknowledged(call, node, self.replicas.membership):
                stored[node] = {0}
            else:
                failed.append(node)
        for target in failed:
            holder = next((node for node in layout.target.preference(series)
                           if node not in owners and self.replicas.membership.is_up(node)), None)
            if holder is not None and acknowledged(self._hint(holder, target, request), holder, self.replicas.membership):
                if self.replicas.consistency != "all":
                    stored[(holder, target)] = {0}
        if copies(series, 0, stored, layout) < self.replicas.required:
            raise QuorumError(f"delete of {series!r}: fewer than {self.replicas.required} of {self.replicas.replication_factor} "
                              f"copies ({self.replicas.consistency}) could be recorded; retrying is safe")
        return request

    def _send(self, node: int, request: dict):
        if node == self.replicas.membership.self_node:
            return run_here(lambda: self.local_delete(request["series"], request["start"], request["end"],
                                                      request["seq"]))
        return self.replicas.peers.pool.submit(self.replicas.peers.call, node, "POST", DELETE_PATH, orjson.dumps(request))

    def _hint(self, holder: int, target: int, request: dict):
        if holder == self.replicas.membership.self_node:
            return run_here(lambda: self.replicas.hints.store_delete(target, request["seq"], request))
        return self.replicas.peers.pool.submit(self.replicas.peers.call, holder, "POST", "/cluster/hint", orjson.dumps(request),
                                      {"target": target, "kind": "delete"})
