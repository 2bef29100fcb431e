"""The cluster's parts in one process that serves requests (a gunicorn worker or the Flight process), and the
single-node stand-ins the same code paths use when CLUSTER_ENABLED is false.

Invariant: api/ is the only place that joins cluster/ with ingest/ and query/: the cluster gets the local
Writer, delete and query functions as plain callables, so those packages never import it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pyarrow as pa

from countdb.catalog.db import connect
from countdb.cluster.agent import Agent
from countdb.cluster.auth import Verifier
from countdb.cluster.coordinator import Replicas, ReplicatedWriter, required_copies
from countdb.cluster.deletes import ReplicatedDeleter
from countdb.cluster.hints import HintStore
from countdb.cluster.layout import LayoutFile
from countdb.cluster.members import Membership
from countdb.cluster.peers import PeerClient, PeerError, local_address
from countdb.cluster.reads import ClusterReads, read_copies
from countdb.config import Settings
from countdb.datadir import DataDir
from countdb.errors import InvalidInput
from countdb.ingest.delete import delete_points
from countdb.ingest.flush import Flusher
from countdb.ingest.writer import Writer
from countdb.wal.record import UNFLUSHED_SCHEMA


class LocalReads:
    """A single node holds every point: nothing to fetch from elsewhere."""

    def series_points(self, series: str, start_ms: int, end_ms: int) -> None:
        return None

    def selection_points(self, selector: str | None, start_ms: int, end_ms: int) -> None:
        return None

    def owner_answer(self, kind: str, series: str, params: dict) -> None:
        return None


class LocalDeleter:
    def __init__(self, datadir: DataDir, writer: Writer):
        self.datadir = datadir
        self.writer = writer

    def delete(self, series: str, start_ms: int, end_ms: int) -> dict:
        tombstone = delete_points(self.datadir, series, start_ms, end_ms, self.writer.next_seq())
        return {"series": tombstone.series, "start": tombstone.start_ms, "end": tombstone.end_ms, "seq": tombstone.seq}


@dataclass
class ClusterServices:
    settings: Settings
    layout: LayoutFile
    membership: Membership
    peers: PeerClient
    hints: HintStore
    verifier: Verifier
    reads: ClusterReads
    sink: ReplicatedWriter
    deleter: ReplicatedDeleter
    datadir: DataDir

    @classmethod
    def open(cls, settings: Settings, datadir: DataDir, writer: Writer) -> "ClusterServices":
        layout = LayoutFile(datadir.cluster_state, settings.cluster_nodes, settings.replication_factor)
        node = settings.node_index
        membership = Membership(datadir.cluster_state, settings.cluster_nodes, node,
                                settings.failure_timeout_seconds, settings.heartbeat_interval_seconds,
                                voters=lambda: layout().voters())
        peers = PeerClient(settings.cluster_nodes, node, settings.cluster_secret, settings.forward_timeout_seconds,
                           local_address(settings.bind_host, settings.bind_port))
        hints = HintStore(datadir.hints)
        replicas = Replicas(layout, settings.replication_factor, settings.write_consistency, membership, peers, hints)
        sink = ReplicatedWriter(writer, replicas)

        def local_delete(series: str, start_ms: int, end_ms: int, seq: int):
            return delete_points(datadir, series, start_ms, end_ms, seq)

        deleter = ReplicatedDeleter(local_delete, writer.next_seq, replicas)
        verifier = Verifier(settings.cluster_secret, datadir.nonce_register)
        return cls(settings, layout, membership, peers, hints, verifier,
                   ClusterReads(layout, settings.replication_factor,
                                read_copies(settings.replication_factor,
                                            required_copies(settings.write_consistency, settings.replication_factor)),
                                membership, peers,
                                settings.query_timeout_seconds + settings.forward_timeout_seconds),
                   sink, deleter, datadir)

    def repair(self, node: int | None) -> dict:
        """One anti-entropy round now with `node` (1-based) or every co-owner that is up; what each moved."""
        me = self.settings.node_index
        if node is not None and not (1 <= node <= len(self.settings.cluster_nodes) and node - 1 != me):
            raise InvalidInput(f"node: must be another node's number, 1 to {len(self.settings.cluster_nodes)}",
                               field="node")
        agent = Agent(self.settings, self.datadir, self.peers)
        peers = [node - 1] if node is not None else [n for n in self.membership.up_nodes() if n != me]
        report: dict[str, dict] = {}
        for peer in peers:
            try:
                report[str(peer + 1)] = agent.repair_with(peer)
            except PeerError as error:
                report[str(peer + 1)] = {"error": str(error)}
        return {"node": me + 1, "peers": report}

    def close(self) -> None:
        self.peers.close()
        self.verifier.close()


class SegmentPublisher:
    """Publishes pushed Parquet segments as blocks, through this process's own Flusher (one at a time)."""

    def __init__(self, datadir: DataDir):
        self.datadir = datadir
        self._flusher: Flusher | None = None
        self._lock = threading.Lock()

    def publish(self, stamped: pa.Table) -> int:
        """Durably publish stamped points (series, ts, value, seq); returns how many the flush published (points
        this node already held with the same or a later stamp are dropped by it)."""
        table = stamped.append_column("pos", pa.arange(0, stamped.num_rows)).cast(UNFLUSHED_SCHEMA)
        with self._lock:
            if self._flusher is None:
                self._flusher = Flusher(self.datadir, connect(self.datadir.catalog_path))
            return self._flusher.flush(table, []).points

    def close(self) -> None:
        with self._lock:
            if self._flusher is not None:
                self._flusher.close()
                self._flusher.catalog.close()
