"""ReplicatedWriter: the write path of a clustered node. It stamps a write once, splits it by owner set, sends
each node its rows in parallel (this node's through its own Writer; copies for a peer that overlap in time go
in one request, cluster/copies.py), keeps hints for owners that are down on
the next healthy node of the ring, and acknowledges only when every owner set has WRITE_CONSISTENCY copies
(while the membership changes: in each ring that needs them, cluster/layout.py).

Invariant: a success means each part of the request is durable (WAL or hint file) on enough nodes; otherwise
the client gets QuorumError (503, retry is safe: same stamp semantics, last write wins per series and ts).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np
import pyarrow as pa

from countdb.cluster.copies import CopyQueues, forward
from countdb.cluster.hints import HintStore
from countdb.cluster.layout import Layout
from countdb.cluster.members import Membership
from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.wire import encode_stream
from countdb.errors import CountError, Unavailable
from countdb.obs import metrics
from countdb.wal.record import SERIES_TYPE, WAL_DICTIONARY_SCHEMA, Columns, with_series_dictionary

log = logging.getLogger(__name__)

SEQ_HEADER = "X-Count-Seq"


class QuorumError(Unavailable):
    """Too few nodes stored a write (or a delete) durably for WRITE_CONSISTENCY; retrying is safe."""


class LocalWriter(Protocol):
    def write(self, batches: list, seq: int | None = None) -> int: ...
    def wait_for_room(self) -> None: ...
    def next_seq(self) -> int: ...


def required_copies(consistency: str, replication_factor: int) -> int:
    """Copies a write needs before it is acknowledged: one, a majority of REPLICATION_FACTOR, or all."""
    return {"one": 1, "quorum": replication_factor // 2 + 1, "all": replication_factor}[consistency]


def points_table(batches: list) -> pa.Table:
    """Parsed points (Columns or Arrow batches) as one table (series dictionary-encoded, ts, value)."""
    parts = []
    for points in batches:
        if isinstance(points, Columns):
            parts.append(pa.record_batch([pa.array(points.series, SERIES_TYPE), pa.array(points.ts, pa.int64()),
                                          pa.array(points.values, pa.float64())], schema=WAL_DICTIONARY_SCHEMA))
        else:
            parts.append(with_series_dictionary(points.select(["series", "ts", "value"])).cast(WAL_DICTIONARY_SCHEMA))
    return pa.Table.from_batches(parts, WAL_DICTIONARY_SCHEMA).unify_dictionaries().combine_chunks()


@dataclass
class Placement:
    """Where each row of a table goes: `part_of_row[i]` indexes `parts`, the distinct owner sets."""

    table: pa.Table
    parts: list[tuple[int, ...]]
    first_keys: list[str]
    part_of_row: np.ndarray

    @classmethod
    def of(cls, table: pa.Table, layout: Layout) -> "Placement":
        series = table["series"].chunk(0) if table.num_rows else pa.array([], SERIES_TYPE)
        part_ids: dict[tuple[int, ...], int] = {}
        first_keys: list[str] = []
        part_of_key = np.empty(len(series.dictionary), dtype=np.int32)
        for index, key in enumerate(series.dictionary.to_pylist()):
            owners = layout.owners(key)
            if owners not in part_ids:
                part_ids[owners] = len(part_ids)
                first_keys.append(key)
            part_of_key[index] = part_ids[owners]
        indices = series.indices.to_numpy(zero_copy_only=False)
        return cls(table, list(part_ids), first_keys, part_of_key[indices])

    def rows_of(self, parts: set[int]) -> pa.Table:
        if len(parts) == len(self.parts):
            return self.table
        # NOTE: a lookup per part, not np.isin: requests are small and isin's set-up cost most of a copy's CPU
        chosen = np.zeros(len(self.parts), dtype=bool)
        chosen[list(parts)] = True
        return self.table.filter(pa.array(chosen[self.part_of_row]))

    def parts_of(self, node: int) -> set[int]:
        return {i for i, owners in enumerate(self.parts) if node in owners}


@dataclass(frozen=True)
class Replicas:
    """Where the copies of a series go and how many must be stored before a write or delete is acknowledged:
    the rings (as of now), REPLICATION_FACTOR and WRITE_CONSISTENCY, who is up, how peers are reached, where
    hints are kept."""

    layout: Callable[[], Layout]
    replication_factor: int
    consistency: str
    membership: Membership
    peers: PeerClient
    hints: HintStore

    @property
    def required(self) -> int:
        return required_copies(self.consistency, self.replication_factor)


class ReplicatedWriter:
    """The PointSink of a clustered node (what the write resources and Flight call instead of the Writer)."""

    def __init__(self, local: LocalWriter, replicas: Replicas):
        self.local = local
        self.replicas = replicas
        self.self_node = replicas.membership.self_node
        self.copies = CopyQueues(replicas.peers)

    def wait_for_room(self) -> None:
        """Refuse at once when this node is in a minority, then wait like the local Writer."""
        self.replicas.membership.require_majority()
        self.local.wait_for_room()

    def next_seq(self) -> int:
        return self.local.next_seq()

    def write(self, batches: list, seq: int | None = None) -> int:
        """Store the points on their owners; returns how many. Raises MinorityError or QuorumError (503)."""
        self.replicas.membership.require_majority()
        table = points_table(batches)
        seq = self.local.next_seq() if seq is None else seq
        layout = self.replicas.layout()
        placement = Placement.of(table, layout)
        stored = self._deliver(placement, seq, layout)
        self._check_quorum(placement, stored, layout, f"write of {table.num_rows} points")
        return table.num_rows

    def _deliver(self, placement: Placement, seq: int, layout: Layout) -> dict:
        """Send every node its rows, then hint for the ones that failed; returns the parts each
        acknowledging node (owner or hint holder) covers, keyed by node."""
        up = set(self.replicas.membership.up_nodes())
        involved = {node for owners in placement.parts for node in owners}
        # NOTE: this node last, so its own WAL append overlaps the peers' requests instead of delaying them.
        calls = {node: self._send(node, placement.rows_of(placement.parts_of(node)), seq)
                 for node in sorted(involved & up, key=lambda n: n == self.self_node)}
        stored: dict = {}  # node -> parts it stored; (holder, owner) -> parts kept as hints for owner
        failed = involved - up
        for node, call in calls.items():
            if acknowledged(call, node, self.replicas.membership):
                stored.setdefault(node, set()).update(placement.parts_of(node))
            else:
                failed.add(node)
        if failed:
            self._hint(placement, seq, failed, up - failed, stored, layout)
        return stored

    def _send(self, node: int, rows: pa.Table, seq: int) -> Future:
        if node == self.self_node:
            return run_here(lambda: self.local.write(rows.to_batches(), seq=seq))
        metrics.CLUSTER_FORWARDED_POINTS.inc(rows.num_rows)
        return self.copies.submit(node, _with_seq(rows, seq))

    def _hint(self, placement: Placement, seq: int, failed: set[int], healthy: set[int],
              stored: dict, layout: Layout) -> None:
        """For each failed owner of each part, keep its rows as a hint on the next healthy node of the ring
        that is not an owner of that part (sloppy quorum). Hints count toward ONE and QUORUM, not ALL, and only
        as distinct nodes (copies())."""
        plan: dict[tuple[int, int], set[int]] = {}
        for part, owners in enumerate(placement.parts):
            for target in sorted(failed & set(owners)):
                holder = next((node for node in layout.target.preference(placement.first_keys[part])
                               if node in healthy and node not in owners), None)
                if holder is not None:
                    plan.setdefault((holder, target), set()).add(part)
        calls = {}
        for (holder, target), parts in plan.items():
            rows = _with_seq(placement.rows_of(parts), seq)
            if holder == self.self_node:
                calls[(holder, target)] = run_here(lambda t=target, r=rows: self.replicas.hints.store_points(t, seq, r))
            else:
                calls[(holder, target)] = self.replicas.peers.pool.submit(
                    forward, self.replicas.peers, holder, "/cluster/hint", encode_stream(rows), {"target": target})
        for (holder, target), call in calls.items():
            if acknowledged(call, holder, self.replicas.membership):
                metrics.CLUSTER_HINTS_STORED.inc()
                if self.replicas.consistency != "all":
                    stored.setdefault((holder, target), set()).update(plan[(holder, target)])

    def _check_quorum(self, placement: Placement, stored: dict, layout: Layout, what: str) -> None:
        short = [owners for part, owners in enumerate(placement.parts)
                 if copies(placement.first_keys[part], part, stored, layout) < self.replicas.required]
        if short:
            nodes = ", ".join(str(n + 1) for n in sorted({n for owners in short for n in owners}))
            raise QuorumError(f"{what}: fewer than {self.replicas.required} of {self.replicas.replication_factor} "
                              f"copies ({self.replicas.consistency}) could be stored on nodes {nodes} and their "
                              f"stand-ins; nothing is lost by retrying the request")


def copies(key: str, part: int, stored: dict, layout: Layout) -> int:
    """The copies of a part (whose first key is `key`) in the ring that has fewest: the distinct nodes holding
    it, each owner that stored it and each node keeping a hint of it for an owner (keyed (holder, owner) in
    `stored`). Two hints on one node are one copy: that node alone holds them."""
    def holders(owners: tuple[int, ...]) -> int:
        found = {node for node in owners if part in stored.get(node, ())}
        found |= {entry[0] for entry, parts in stored.items()
                  if isinstance(entry, tuple) and entry[1] in owners and part in parts}
        return len(found)

    return min(holders(ring.owners(key, layout.replication_factor)) for ring in layout.quorum_rings())


def _with_seq(rows: pa.Table, seq: int) -> pa.Table:
    return rows.append_column("seq", pa.repeat(pa.scalar(seq, pa.int64()), rows.num_rows))


def run_here(work: Callable) -> Future:
    """Run `work` on this thread, its outcome as a Future like a peer call's."""
    future: Future = Future()
    try:
        future.set_result(work())
    except (CountError, OSError) as error:
        future.set_exception(error)
    return future


def acknowledged(call: Future, node: int, membership: Membership) -> bool:
    """Whether `node` stored what `call` sent it; a peer that could not be reached is suspected."""
    try:
        call.result()
        return True
    except PeerError as error:
        log.warning("cluster write to %s failed: %s", error.peer + 1, error.cause)
        if error.status is None:
            membership.suspect(node)
        return False
    except (CountError, OSError) as error:
        log.warning("cluster write on this node (%d) failed: %s", node + 1, error)
        return False
