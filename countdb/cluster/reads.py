"""ClusterReads: the points other nodes hold that a query on this node must see.

A one-series query reads as many live owners as meet every write's quorum (R + W > N, read_copies), taking only
caught-up owners' copies as enough (a node back from downtime is not one until hints and anti-entropy have filled
it in: cluster/agent.py), and merges the copies by write stamp; on a node that is not an owner, when one caught-up
owner is a read quorum, that owner answers the query whole and its answer is relayed as it is (owner_answer).
A query over many series (match=, group-by, discovery, SQL) reads each series once: here when this node owns it,
otherwise on the first live owner, which each peer works out itself from the ring and the live nodes this node
sends (reader_of).
While the membership changes, reads use the ring cluster/layout.py names, and many-series answers are merged with
this node's points by stamp, since a node may then hold copies of series another node answers for.
A SQL statement that splits by series runs on as few nodes as cover every series instead (statement_readers),
and only the answers travel (statement_answers).
Invariant: points fetched from peers carry stamps (STAMPED_SCHEMA), so the query merges copies as its own WAL and
blocks; a series none of whose owners answers makes the query fail (503), never answer without it, except on a node
in a minority, which answers from what it reaches and says so (api/middleware.py MinorityNotice).
"""

from __future__ import annotations

from typing import Callable

import orjson
import pyarrow as pa
import urllib3

from countdb.cluster.layout import Layout
from countdb.cluster.members import Membership
from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.ring import Ring
from countdb.cluster.wire import STAMPED_SCHEMA, decode_stream
from countdb.errors import InvalidInput, QueryRejected, QueryTimeout, Unavailable
from countdb.model import RemotePoints, last_writes

POINTS_PATH = "/cluster/points"
ANSWER_PATH = "/cluster/answer/"
"""+ range|aggregated: a one-series query answered from the node's own copy (owner_answer)."""
SQL_PATH = "/cluster/sql"
SELECTION_ATTEMPTS = 2
ANSWERED_BY_SETS = "Count-Answered-By-Sets"
"""Response header of a peer that ran its part of a split statement over the owner sets it was sent (an older
node answers by reader_of instead: the parts would then overlap or miss series)."""


class OwnersUnreachable(Unavailable):
    """No owner of some series answered: the query can't be answered whole."""


def read_copies(replication_factor: int, write_copies: int) -> int:
    """Owners a one-series read asks so that it meets every write's `write_copies` owners in at least one (as
    Dynamo's and Cassandra's R + W > N): one when writes wait for every owner, all when they wait for one."""
    return replication_factor - write_copies + 1


def reader_of(ring: Ring, replication_factor: int, key: str, coordinator: int, live: set[int]) -> int | None:
    """Which node answers for `key` in a many-series query coordinated by `coordinator`: itself when it owns
    the key, else the first owner in `live`; None when no owner is live."""
    owners = ring.owners(key, replication_factor)
    if coordinator in owners:
        return coordinator
    return next((node for node in owners if node in live), None)


def statement_readers(ring: Ring, replication_factor: int, coordinator: int, live: set[int]) -> dict[int, list]:
    """Which peers run a split statement `coordinator` coordinates, each over which owner sets (sorted lists).
    The coordinator runs it over all it holds, so it answers for every set it is in. A node that runs it scans all
    it holds, whatever share of it it keeps, so the other sets go to as few live nodes as possible (greedy set
    cover: the node in most of the sets left first, ties to the nearest after the coordinator, so each coordinator
    leans on another); the nodes left out scan nothing. A set with no live node is left out (_require_a_reader)."""
    left = {owners for owners in ring.owner_sets(replication_factor) if coordinator not in owners and owners & live}
    candidates = sorted(live - {coordinator})
    readers: dict[int, list] = {}
    while left:
        node = min(candidates, key=lambda n: (-sum(n in owners for owners in left),
                                              (n - coordinator) % len(ring.nodes)))
        readers[node] = sorted(sorted(owners) for owners in left if node in owners)
        left = {owners for owners in left if node not in owners}
    return readers


class ClusterReads:
    def __init__(self, layout: Callable[[], Layout], replication_factor: int, read_copies: int,
                 membership: Membership, peers: PeerClient, statement_timeout_seconds: float):
        """`read_copies`: how many owners a one-series read asks (read_copies()); `statement_timeout_seconds`: how
        long a peer may take over a query it runs for this node (a relayed one-series query, its part of a split
        SQL statement)."""
        self.layout = layout
        self.replication_factor = replication_factor
        self.read_copies = read_copies
        self.membership = membership
        self.peers = peers
        self.self_node = membership.self_node
        self.statement_timeout_seconds = statement_timeout_seconds

    def series_points(self, series: str, start_ms: int, end_ms: int) -> RemotePoints | None:
        """Stamped points of `series` in [start_ms, end_ms] from enough of its live owners to make a read quorum
        with the writes' (read_copies) among the owners that are caught up (cluster/agent.py), this node counting
        when it is one: the others asked first, more asked when some fail or are still catching up (so a node
        back from downtime merges its co-owners' copies until hints and anti-entropy have filled it in). To merge
        with this node's copy when it is an owner, else (the copies merged here) the whole answer."""
        owners = self.layout().read_ring.owners(series, self.replication_factor)
        membership = self.membership
        local = self.self_node in owners
        others = sorted((node for node in owners if node != self.self_node and membership.is_up(node)),
                        key=lambda node: not membership.caught_up(node))
        wanted = self.read_copies - (local and membership.caught_up(self.self_node))
        request = {"series": series, "start": start_ms, "end": end_ms}
        answers: list[pa.Table] = []
        failures: dict[int, str] = {}
        while wanted > 0 and others:
            asked, others = others[:wanted], others[wanted:]
            answered, failed = self._ask(asked, request)
            answers += answered
            failures.update(failed)
            wanted -= sum(node not in failed and membership.caught_up(node) for node in asked)
        if not answers and not local and membership.has_majority():
            raise OwnersUnreachable(f"no owner of series {series!r} (nodes {', '.join(str(n + 1) for n in owners)}) "
                                    f"answered: {'; '.join(failures.values()) or 'all are down'}")
        if local:
            table = _concat(answers)
            return None if table is None else RemotePoints(table, "merge")
        copies = _concat(answers) or STAMPED_SCHEMA.empty_table()
        # NOTE: one owner's answer holds one point per timestamp already (merging 360 rows cost 0.13 ms)
        return RemotePoints(copies if len(answers) == 1 else latest_copies(copies), "only")

    def owner_answer(self, kind: str, series: str, params: dict) -> urllib3.BaseHTTPResponse | None:
        """The answer to a one-series query (`kind` range or aggregated, with the public query's `params`) from an
        owner of `series`, as it sent it (streamed), when this node is not an owner and one caught-up owner's copy
        is a read quorum (read_copies 1): one hop, and nothing decoded or encoded here, where series_points moves
        the owner's points here to answer. Its status is the owner's: a refused or timed-out query is refused or
        timed out here the same way. None when series_points must answer: this node owns the series, a read takes
        more copies, no owner that is up is caught up, or the one asked failed (unreachable, a 5xx other than a
        time-out, or a 404 from a version without the route)."""
        if self.read_copies != 1:
            return None
        owners = self.layout().read_ring.owners(series, self.replication_factor)
        if self.self_node in owners:
            return None
        membership = self.membership
        owner = next((node for node in owners if membership.is_up(node) and membership.caught_up(node)), None)
        if owner is None:
            return None
        try:
            response = self.peers.send(owner, "GET", ANSWER_PATH + kind, params={**params, "series": series},
                                       timeout_seconds=self.statement_timeout_seconds, stream=True)
        except PeerError:
            membership.suspect(owner)
            return None
        if response.status == 404 or (response.status >= 500 and response.status != 504):
            response.close()
            return None
        return response

    def selection_points(self, selector: str | None, start_ms: int, end_ms: int) -> RemotePoints | None:
        """Stamped points of every series `selector` matches (all series when None) that this node does not own,
        each from one live owner."""
        live = set(self.membership.up_nodes())
        layout = self.layout()
        failures: dict[int, str] = {}
        for _ in range(SELECTION_ATTEMPTS):
            self._require_a_reader(layout.read_ring, live, failures.values())
            asked = [node for node in sorted(live) if node != self.self_node]
            request = {"match": selector, "start": start_ms, "end": end_ms, "reader_of": self.self_node,
                       "live": sorted(live), "ring": list(layout.read_ring.addresses)}
            answers, failures = self._ask(asked, request)
            if not failures or not self.membership.has_majority():
                table = _concat(answers)  # in a minority: what this node and the peers it reaches hold
                mode = "merge" if layout.merges_selections else "add"
                return None if table is None else RemotePoints(table, mode)
            # NOTE: ask again without the nodes that failed: the others then answer for their series.
            live -= set(failures)
        raise OwnersUnreachable("nodes did not answer, so some series would be missing: "
                                + "; ".join(failures.values()))

    def statement_answers(self, sql: str, params: list | None) -> Callable[[], list[pa.Table] | None] | None:
        """Start a statement that splits by series (query/sql_split.py) on the peers statement_readers names, each
        over the owner sets it answers for; returns how to collect the answers (None from it when a peer can't
        take part: an older version). None at once while the membership changes: copies must then be merged by
        stamp, which a split answer can't be."""
        layout = self.layout()
        if layout.merges_selections:
            return None
        live = set(self.membership.up_nodes())
        self._require_a_reader(layout.read_ring, live, [])

        def start() -> dict:
            readers = statement_readers(layout.read_ring, self.replication_factor, self.self_node, live)
            request = {"sql": sql, "params": params, "reader_of": self.self_node, "live": sorted(live),
                       "ring": list(layout.read_ring.addresses)}
            bodies = {node: orjson.dumps({**request, "sets": sets}) for node, sets in readers.items()}
            return {node: self.peers.pool.submit(self.peers.call, node, "POST", SQL_PATH, body, None,
                                                 self.statement_timeout_seconds)
                    for node, body in bodies.items()}

        try:
            calls = start()
        except TypeError:  # a parameter JSON can't carry: read the points instead
            return None

        def collect() -> list[pa.Table] | None:
            nonlocal calls, live
            for attempt in range(SELECTION_ATTEMPTS):
                answers, failures = self._gather(calls, _decode_answer)
                if any(status == 404 for _, status in failures.values()) or any(a is None for a in answers):
                    return None
                _raise_statement_error(failures)
                if not failures:
                    return answers
                live -= set(failures)  # others answer for the failed nodes' sets when asked again
                if attempt + 1 < SELECTION_ATTEMPTS:
                    self._require_a_reader(layout.read_ring, live, [reason for reason, _ in failures.values()])
                    calls = start()
            if not self.membership.has_majority():
                return answers  # in a minority: what the peers it reaches answer for
            raise OwnersUnreachable("nodes did not answer, so some series would be missing: "
                                    + "; ".join(reason for reason, _ in failures.values()))

        return collect

    def _require_a_reader(self, ring: Ring, live: set[int], reasons) -> None:
        """OwnersUnreachable when some series has no owner in `live`: a many-series answer would lack it without
        saying so. A node in a minority answers from what it reaches, and says so, instead."""
        lost = [owners for owners in ring.owner_sets(self.replication_factor) if not owners & live]
        if lost and self.membership.has_majority():
            nodes = ", ".join(str(node + 1) for node in sorted(set().union(*lost)))
            raise OwnersUnreachable(f"no owner of some series is up or answered (nodes {nodes}): "
                                    + ("; ".join(reasons) or "they are down"))

    def _ask(self, nodes: list[int], request: dict) -> tuple[list[pa.Table], dict[int, str]]:
        body = orjson.dumps(request)
        calls = {node: self.peers.pool.submit(self.peers.call, node, "POST", POINTS_PATH, body) for node in nodes}
        answers, failures = self._gather(calls, lambda response: decode_stream(response.data))
        return answers, {node: reason for node, (reason, _) in failures.items()}

    def _gather(self, calls: dict, decode: Callable) -> tuple[list, dict]:
        """The decoded answers, and per failed node (its reason, its HTTP status or None)."""
        answers, failures = [], {}
        for node, call in calls.items():
            try:
                answers.append(decode(call.result()))
            except PeerError as error:
                if error.status is None:
                    self.membership.suspect(node)
                failures[node] = (str(error), error.status)
            except InvalidInput as error:
                failures[node] = (f"node {node + 1}: {error}", None)
        return answers, failures


def _raise_statement_error(failures: dict) -> None:
    """A peer that ran the statement and refused it (400) or stopped it at the time limit (504) decides for the
    whole statement: the others would do the same with its series."""
    for reason, status in failures.values():
        if status == 400:
            raise QueryRejected(reason)
        if status == 504:
            raise QueryTimeout(reason)


def _decode_answer(response) -> pa.Table | None:
    """A peer's part of a split statement; None from a peer that did not answer by the owner sets it was sent."""
    if response.headers.get(ANSWERED_BY_SETS) is None:
        return None
    try:
        return pa.ipc.open_stream(pa.py_buffer(response.data)).read_all()
    except (pa.ArrowInvalid, OSError) as error:
        raise InvalidInput(f"answer: not an Arrow IPC stream ({error})", field="answer") from None


def latest_copies(table: pa.Table) -> pa.Table:
    """One row per (series, ts): the copy with the highest stamp (owners may hold different writes meanwhile)."""
    if table.num_rows < 2:
        return table
    return last_writes(table.set_column(0, "series", table["series"].cast(pa.string())), ["series", "ts"])


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    tables = [table for table in tables if table.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables).unify_dictionaries()
