"""ClusterReads: the points other nodes hold that a query on this node must see.

A one-series query reads every live owner of the series and merges the copies by write stamp. A query over many
series (match=, group-by, discovery, SQL) reads each series once: here when this node owns it, otherwise on the
first live owner, which each peer works out itself from the ring and the live nodes this node sends (reader_of).
Invariant: answers carry stamps (STAMPED_SCHEMA) so the query merges copies as it merges its own WAL and blocks;
a series none of whose owners answers makes the query fail (503), never answer without it, except on a node
in a minority, which answers from what it reaches and says so (api/middleware.py MinorityNotice).
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from countdb.cluster.members import Membership
from countdb.cluster.peers import PeerClient, PeerError
from countdb.cluster.ring import Ring
from countdb.cluster.wire import decode_stream
from countdb.errors import Unavailable

POINTS_PATH = "/cluster/points"
SELECTION_ATTEMPTS = 2


class OwnersUnreachable(Unavailable):
    """No owner of some series answered: the query can't be answered whole."""


def reader_of(ring: Ring, replication_factor: int, key: str, coordinator: int, live: set[int]) -> int | None:
    """Which node answers for `key` in a many-series query coordinated by `coordinator`: itself when it owns
    the key, else the first owner in `live`; None when no owner is live."""
    owners = ring.owners(key, replication_factor)
    if coordinator in owners:
        return coordinator
    return next((node for node in owners if node in live), None)


class ClusterReads:
    def __init__(self, ring: Ring, replication_factor: int, membership: Membership, peers: PeerClient):
        self.ring = ring
        self.replication_factor = replication_factor
        self.membership = membership
        self.peers = peers
        self.self_node = membership.self_node

    def series_points(self, series: str, start_ms: int, end_ms: int) -> pa.Table | None:
        """Stamped points of `series` in [start_ms, end_ms] from its live owners other than this node."""
        owners = self.ring.owners(series, self.replication_factor)
        asked = [node for node in owners if node != self.self_node and self.membership.is_up(node)]
        request = {"series": series, "start": start_ms, "end": end_ms}
        answers, failures = self._ask(asked, request)
        if not answers and self.self_node not in owners and self.membership.has_majority():
            raise OwnersUnreachable(f"no owner of series {series!r} (nodes {', '.join(str(n + 1) for n in owners)}) "
                                    f"answered: {'; '.join(failures.values()) or 'all are down'}")
        return _concat(answers)

    def selection_points(self, selector: str | None, start_ms: int, end_ms: int) -> pa.Table | None:
        """Stamped points of every series `selector` matches (all series when None) that this node does not own,
        each from one live owner."""
        live = set(self.membership.up_nodes())
        for _ in range(SELECTION_ATTEMPTS):
            asked = [node for node in sorted(live) if node != self.self_node]
            request = {"match": selector, "start": start_ms, "end": end_ms, "reader_of": self.self_node,
                       "live": sorted(live)}
            answers, failures = self._ask(asked, request)
            if not failures or not self.membership.has_majority():
                return _concat(answers)  # in a minority: what this node and the peers it reaches hold
            # NOTE: ask again without the nodes that failed: the others then answer for their series.
            live -= set(failures)
        raise OwnersUnreachable("nodes did not answer, so some series would be missing: "
                                + "; ".join(failures.values()))

    def _ask(self, nodes: list[int], request: dict) -> tuple[list[pa.Table], dict[int, str]]:
        body = orjson.dumps(request)
        calls = {node: self.peers.pool.submit(self.peers.call, node, "POST", POINTS_PATH, body) for node in nodes}
        answers, failures = [], {}
        for node, call in calls.items():
            try:
                answers.append(decode_stream(call.result().content))
            except PeerError as error:
                if error.status is None:
                    self.membership.suspect(node)
                failures[node] = str(error)
        return answers, failures


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    tables = [table for table in tables if table.num_rows]
    if not tables:
        return None
    return pa.concat_tables(tables).unify_dictionaries()
