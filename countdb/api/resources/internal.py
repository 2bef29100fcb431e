"""Internal routes of a cluster (/cluster/*, /replicate): what nodes ask each other. Every request is signed
with CLUSTER_SECRET and checked by InternalAuth before it reaches these responders (req.context.body)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import falcon
import orjson
import pyarrow as pa

from countdb import __version__
from countdb.api.cluster_services import ClusterServices, SegmentPublisher
from countdb.api.media import send_json
from countdb.api.results import send_result
from countdb.cluster.agent import LEAVE_FILE, read_agent_state
from countdb.cluster.auth import PROTOCOL_VERSION
from countdb.cluster.layout import UnknownMember, read_state, ring_of
from countdb.cluster.reads import ANSWERED_BY_SETS, reader_of
from countdb.cluster.ring import partition_of
from countdb.cluster.wire import ARROW_STREAM, decode_segment, decode_stream, encode_stream, seq_groups
from countdb.errors import InvalidInput
from countdb.ingest.delete import delete_points
from countdb.ingest.writer import Writer
from countdb.model import MAX_TIMESTAMP_MS, YearMonth
from countdb.query.discovery import match_series
from countdb.query.engine import QueryEngine
from countdb.query.export import digest_cells, export_keys, export_series, snapshot_token
from countdb.query.selectors import parse_selector
from countdb.query.sql import SqlService
from countdb.storage.compact import Compactor


def _json(req: falcon.Request) -> dict:
    try:
        document = orjson.loads(req.context.body or b"{}")
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"body: not JSON ({error})", field="body") from None
    if not isinstance(document, dict):
        raise InvalidInput("body: must be a JSON object", field="body")
    return document


def _fields(document: dict, **kinds) -> list:
    """The named fields of an internal request, each converted by its kind; InvalidInput naming a bad one."""
    values = []
    for name, kind in kinds.items():
        try:
            values.append(kind(document[name]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInput(f"{name}: missing or malformed", field=name) from None
    return values


def _send_points(resp: falcon.Response, table: pa.Table) -> None:
    resp.content_type = ARROW_STREAM
    resp.data = encode_stream(table)


class HeartbeatResource:
    def __init__(self, cluster: ClusterServices):
        self.cluster = cluster

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        settings = self.cluster.settings
        state = read_state(self.cluster.datadir.cluster_state)
        pending = self.cluster.hints.counts()
        send_json(resp, {"node": settings.node_index, "node_id": settings.node_id_value, "protocol": PROTOCOL_VERSION,
                         "version": __version__, "time": time.time(),
                         "ring": None if state is None else state.to_json(),
                         "hints_pending": sum(pending.values()), "hints_for_you": pending.get(req.context.peer, 0),
                         "caught_up": self.cluster.membership.caught_up(settings.node_index)})


class ClusterStatusResource:
    """GET /cluster/status: members with state and last contact, ring shares, pending hints, last anti-entropy."""

    def __init__(self, cluster: ClusterServices):
        self.cluster = cluster

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        send_json(resp, cluster_status(self.cluster))


def cluster_status(cluster: ClusterServices) -> dict:
    settings, membership, layout = cluster.settings, cluster.membership, cluster.layout()
    shares = layout.target.shares(settings.replication_factor)
    members = membership.members()
    pending = cluster.hints.counts()
    listed = []
    for node, address in enumerate(settings.cluster_nodes):
        member = members.get(node)
        listed.append({"node": node + 1, "address": address, "self": node == settings.node_index,
                       "state": "up" if membership.is_up(node) else "down", "caught_up": membership.caught_up(node),
                       "in_ring": node in layout.target.active,
                       "last_contact": member.last_contact if member else None,
                       "error": member.error if member else "", "ring_share": round(shares[node], 4),
                       "hints_pending": pending.get(node, 0)})
    agent = read_agent_state(cluster.datadir)
    return {"node": settings.node_index + 1, "replication_factor": settings.replication_factor,
            "write_consistency": settings.write_consistency, "majority": membership.has_majority(),
            "members": listed, "anti_entropy": agent.get("anti_entropy", {}),
            "ring": {"phase": layout.phase, "settled": list(layout.settled.addresses),
                     "target": list(layout.target.addresses), "move": agent.get("move", {})}}


class PeerWriteResource:
    """POST /cluster/write: a coordinator's copy of a write for this owner, or a delivered hint (stamped points);
    rows of series this node gave away in a membership change are acknowledged and not kept."""

    def __init__(self, writer: Writer, cluster: ClusterServices):
        self.writer = writer
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.writer.wait_for_room()
        table = self.cluster.layout().kept_rows(decode_stream(req.context.body), self.cluster.settings.node_index)
        written = self.writer.write_stamped(seq_groups(table))
        send_json(resp, {"points": written}, falcon.HTTP_201)


class HintResource:
    """POST /cluster/hint?target=N[&kind=delete]: keep a write (or delete) for node N, which is down."""

    def __init__(self, cluster: ClusterServices):
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        target = req.get_param_as_int("target", required=True, min_value=0,
                                      max_value=len(self.cluster.settings.cluster_nodes) - 1)
        if req.get_param("kind") == "delete":
            request = _json(req)
            self.cluster.hints.store_delete(target, *_fields(request, seq=int), request)
        else:
            table = decode_stream(req.context.body)
            seq = table["seq"][0].as_py() if table.num_rows else 0
            self.cluster.hints.store_points(target, seq, table)
        send_json(resp, {"stored": True}, falcon.HTTP_201)


class PeerDeleteResource:
    """POST /cluster/delete {series, start, end, seq}: record a delete stamped by its coordinator."""

    def __init__(self, cluster: ClusterServices):
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        delete_points(self.cluster.datadir, *_fields(request, series=str, start=int, end=int, seq=int))
        send_json(resp, {"deleted": True})


class PeerPointsResource:
    """POST /cluster/points: this node's stamped points of one series, or of the series a selector matches that
    this node answers for in a query coordinated by `reader_of` (reads.py)."""

    def __init__(self, engine: QueryEngine, cluster: ClusterServices):
        self.engine = engine
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        start, end = _fields({"start": 0, "end": MAX_TIMESTAMP_MS, **request}, start=int, end=int)
        if "series" in request:
            _send_points(resp, export_series(self.engine, *_fields(request, series=str), start, end))
            return
        selector = parse_selector(request["match"]) if request.get("match") else None
        keys = answered_keys(self.engine, self.cluster, request, selector, start, end)
        _send_points(resp, export_keys(self.engine, keys, start, end))


class PeerSqlResource:
    """POST /cluster/sql {sql, params, ring, sets}: a statement that splits by series (query/sql_split.py) over this
    node's series whose owners are one of `sets` (reads.py statement_readers); its answer as Arrow. A request
    without `sets` (an older coordinator's) gets 404, which makes it read the points instead."""

    def __init__(self, engine: QueryEngine, sql: SqlService, cluster: ClusterServices):
        self.engine = engine
        self.sql = sql
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        sql, = _fields(request, sql=str)
        params = request.get("params")
        if params is not None and not isinstance(params, list):
            raise InvalidInput("params: must be a list or null", field="params")
        if "sets" not in request:
            raise falcon.HTTPNotFound(description="this node runs split statements over the owner sets it is sent")
        resp.set_header(ANSWERED_BY_SETS, "yes")
        send_result(resp, "arrow", self.sql.execute_for(sql, params, self._keys(request)))

    def _keys(self, request: dict) -> list[str] | None:
        """This node's series whose owners are one of the request's sets; None when that is every series it holds."""
        ring, rf, me = _ring(self.cluster, request), self.cluster.settings.replication_factor, \
            self.cluster.settings.node_index
        try:
            sets = {frozenset(int(node) for node in owners) for owners in request["sets"]}
        except (TypeError, ValueError):
            raise InvalidInput("sets: must be a list of lists of node numbers", field="sets") from None
        if {owners for owners in ring.owner_sets(rf) if me in owners} <= sets:
            return None
        return [key for key in match_series(self.engine, None)["series"].to_pylist()
                if frozenset(ring.owners(key, rf)) in sets]


def answered_keys(engine: QueryEngine, cluster: ClusterServices, request: dict, selector,
                  start_ms: int = 0, end_ms: int = MAX_TIMESTAMP_MS) -> list[str]:
    """The series `selector` matches (all when None) that this node answers for in a many-series query
    coordinated by the request's `reader_of`, given its `live` nodes and `ring` (reads.py reader_of)."""
    coordinator, live = _fields(request, reader_of=int, live=set)
    ring, rf, me = _ring(cluster, request), cluster.settings.replication_factor, cluster.settings.node_index
    return [key for key in match_series(engine, selector, start_ms, end_ms)["series"].to_pylist()
            if reader_of(ring, rf, key, coordinator, live) == me]


def _ring(cluster: ClusterServices, request: dict):
    """The ring the coordinator reads by (its phase of a membership change may differ from this node's)."""
    if "ring" not in request:
        return cluster.layout().read_ring
    addresses, = _fields(request, ring=tuple)
    try:
        return ring_of(cluster.settings.cluster_nodes, addresses)
    except (UnknownMember, TypeError) as error:
        raise InvalidInput(f"ring: {error}", field="ring") from None


class SharedSeries:
    """The series this node and a peer both own (what the two compare and repair)."""

    def __init__(self, engine: QueryEngine, cluster: ClusterServices):
        self.engine = engine
        self.cluster = cluster

    def keys(self, peer: int) -> list[str]:
        layout, me = self.cluster.layout(), self.cluster.settings.node_index
        return [key for key in match_series(self.engine, None)["series"].to_pylist()
                if layout.co_owned(key, me, peer)]

    def tombstones(self, peer: int, tombstones) -> list:
        layout, me = self.cluster.layout(), self.cluster.settings.node_index
        return [t for t in tombstones if layout.co_owned(t.series, me, peer)]


class DigestResource:
    """POST /cluster/digest {peer, before}: per (month, partition) digests of the series this node and `peer` both
    own, over the points stamped before `before` (all when absent: agent.py leaves out writes whose copies may
    still be in flight), and the tombstones of those series (the replication module compares them)."""

    def __init__(self, engine: QueryEngine, shared: SharedSeries):
        self.engine = engine
        self.shared = shared
        self._computed: dict[int, ComputedDigest] = {}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        peer, = _fields(request, peer=int)
        before, = _fields(request, before=int) if request.get("before") is not None else [None]
        snapshot = self.engine.snapshot()
        # NOTE: digests scan every point both nodes own; a node whose data did not change since the last round
        # answers the digest it computed then, so an idle cluster's anti-entropy costs next to nothing.
        layout = self.shared.cluster.layout()  # NOTE: which series two nodes share changes with the rings
        token = (snapshot_token(snapshot), layout.settled.active, layout.target.active, layout.phase)
        known = self._computed.get(peer)
        if known is None or not known.answers(token, before):
            known = self._computed[peer] = ComputedDigest(token, before, *self._digest(peer, snapshot, before))
        send_json(resp, known.document)

    def _digest(self, peer: int, snapshot, before: int | None) -> tuple[dict, int]:
        """The digest document, and the newest stamp of the points it covers or leaves out."""
        keys = self.shared.keys(peer)
        keyed = pa.table({"series": pa.array(keys, pa.string()),
                          "partition": pa.array([partition_of(key) for key in keys], pa.int32())})
        cells = digest_cells(self.engine, keyed, snapshot, before).to_pylist()
        tombstones = [[t.series, t.start_ms, t.end_ms, t.seq]
                      for t in self.shared.tombstones(peer, snapshot.tombstones)]
        return ({"cells": [[row["month"], row["partition"], row["points"], row["digest"]] for row in cells
                           if row["points"]],
                 "tombstones": tombstones},
                max((row["newest"] for row in cells), default=0))


@dataclass(frozen=True)
class ComputedDigest:
    token: tuple
    before: int | None
    document: dict
    newest: int

    def answers(self, token: tuple, before: int | None) -> bool:
        """Whether this digest is the one asked: same data, and the same points counted (every point is older
        than both horizons, or the horizons are the same)."""
        horizons = [b for b in (self.before, before) if b is not None]
        return token == self.token and (self.before == before or all(self.newest < b for b in horizons))


class CellResource:
    """POST /cluster/cell {peer, month, partitions}: this node's stamped points of some digest cells of a month."""

    def __init__(self, engine: QueryEngine, shared: SharedSeries):
        self.engine = engine
        self.shared = shared

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        partitions, month, peer = _fields(request, partitions=set, month=YearMonth.parse, peer=int)
        keys = [key for key in self.shared.keys(peer) if partition_of(key) in partitions]
        _send_points(resp, export_keys(self.engine, keys, month.start_ms(), month.end_ms()))


class ReplicateResource:
    """POST /replicate?address=<sha256>: a Parquet segment of stamped points pushed by a peer's replication
    module; checked against its content address, then published through the catalog like any block."""

    def __init__(self, publisher: SegmentPublisher, cluster: ClusterServices):
        self.publisher = publisher
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        address = req.get_param("address", required=True)
        segment = decode_segment(req.context.body, address)
        published = self.publisher.publish(self.cluster.layout().kept_rows(segment, self.cluster.settings.node_index))
        send_json(resp, {"address": address, "published": published}, falcon.HTTP_201)


class HandoffResource:
    """POST /cluster/handoff (from this node's agent, while settling): drop the stored points of the series this
    node no longer owns; says how many it dropped and how many such points still wait in a WAL (every worker is
    then asked to flush, so the next call drops them)."""

    def __init__(self, engine: QueryEngine, cluster: ClusterServices, compactor: Callable[[], Compactor]):
        self.engine = engine
        self.cluster = cluster
        self.compactor = compactor

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        layout, me = self.cluster.layout(), self.cluster.settings.node_index
        unflushed = self.engine.snapshot().unflushed
        waiting = unflushed.num_rows - layout.kept_rows(unflushed, me).num_rows
        if waiting:
            self.cluster.datadir.request_flush()  # NOTE: every worker flushes, so the next call can drop them
        compactor = self.compactor()
        try:
            dropped = compactor.drop_series(lambda key: not layout.keeps(key, me))
        finally:
            compactor.close()
        send_json(resp, {"dropped": dropped, "unflushed": waiting})


class LeaveResource:
    """POST /cluster/leave: this node leaves the cluster (its agent starts the change; `countdb cluster leave`)."""

    def __init__(self, cluster: ClusterServices):
        self.cluster = cluster

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        flag = self.cluster.datadir.cluster_state / LEAVE_FILE
        flag.write_text(orjson.dumps({"requested": time.time()}).decode())
        send_json(resp, {"leaving": True, "node": self.cluster.settings.node_index + 1}, falcon.HTTP_202)


class RepairResource:
    """POST /cluster/repair {"node": N?}: one anti-entropy round now with every co-owner (or node N), answering
    what it moved (`countdb cluster repair`)."""

    def __init__(self, repair: Callable[[int | None], dict]):
        self.repair = repair

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = _json(req)
        node = None
        if request.get("node") is not None:
            node, = _fields(request, node=int)
        send_json(resp, self.repair(node))
