"""ClusterReads.statement_answers: how a split SQL statement's answers are gathered from the other nodes, and what
a peer's failure makes of the statement."""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from countdb.cluster.peers import PeerError
from countdb.cluster.reads import ANSWERED_BY_SETS, ClusterReads, OwnersUnreachable, statement_readers
from countdb.cluster.ring import Ring
from countdb.errors import QueryRejected, QueryTimeout


class Peers:
    """Answers /cluster/sql per node as `outcomes` says: a table, or a PeerError status (None: no answer)."""

    def __init__(self, outcomes: dict):
        self.outcomes = outcomes
        self.pool = ThreadPoolExecutor(4)
        self.asked: list[tuple[int, list]] = []

    def call(self, node, method, path, body, params, timeout_seconds):
        self.asked.append((node, orjson.loads(body)["sets"]))
        outcome = self.outcomes[node]
        if isinstance(outcome, tuple):  # (table, headers)
            outcome, headers = outcome
        else:
            headers = {ANSWERED_BY_SETS: "yes"}
        if isinstance(outcome, pa.Table):
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, outcome.schema) as stream:
                stream.write_table(outcome)
            return SimpleNamespace(data=sink.getvalue().to_pybytes(), headers=headers)
        raise PeerError(node, f"127.0.0.1:{node}", "failed", outcome)


class Members:
    self_node = 0

    def __init__(self, majority: bool = True, up: tuple[int, ...] = (0, 1, 2)):
        self.majority = majority
        self.up = up
        self.suspected: list[int] = []

    def up_nodes(self):
        return list(self.up)

    def has_majority(self):
        return self.majority

    def suspect(self, node):
        self.suspected.append(node)


def reads(peers: Peers, members: Members | None = None, changing: bool = False) -> ClusterReads:
    layout = SimpleNamespace(merges_selections=changing, read_ring=Ring.build(("a:1", "b:1", "c:1")))
    return ClusterReads(lambda: layout, 2, 1, members or Members(), peers, 40.0)


def answer(series: str) -> pa.Table:
    return pa.table({"series": [series], "n": [1]})


def test_one_peer_answers_for_the_series_the_coordinator_does_not_hold_and_the_third_scans_nothing():
    peers = Peers({1: answer("bc"), 2: answer("bc")})
    collect = reads(peers).statement_answers("SELECT …", None)
    assert [table["series"][0].as_py() for table in collect()] == ["bc"]
    assert peers.asked == [(1, [[1, 2]])]


def test_a_peer_that_does_not_answer_is_left_out_and_another_asked_for_its_sets():
    peers = Peers({1: None, 2: answer("bc")})
    members = Members()
    collect = reads(peers, members).statement_answers("SELECT …", None)
    assert [table["series"][0].as_py() for table in collect()] == ["bc"]
    assert members.suspected == [1] and peers.asked == [(1, [[1, 2]]), (2, [[1, 2]])]


def test_a_peer_that_answers_without_using_the_sets_makes_the_statement_read_points_instead():
    assert reads(Peers({1: (answer("b"), {})})).statement_answers("SELECT …", None)() is None


def test_when_peers_keep_failing_the_statement_fails_rather_than_answer_without_their_series():
    collect = reads(Peers({1: None, 2: 500})).statement_answers("SELECT …", None)
    with pytest.raises(OwnersUnreachable):
        collect()


def test_a_peer_that_does_not_know_the_route_makes_the_statement_read_points_instead():
    assert reads(Peers({1: 404})).statement_answers("SELECT …", None)() is None


@pytest.mark.parametrize("status, error", [(400, QueryRejected), (504, QueryTimeout)])
def test_a_peer_that_refused_or_timed_out_the_statement_decides_for_it(status, error):
    with pytest.raises(error):
        reads(Peers({1: status})).statement_answers("SELECT …", None)()


def test_in_a_minority_the_answers_of_the_peers_reached_are_enough():
    collect = reads(Peers({1: None, 2: answer("c")}), Members(majority=False)).statement_answers("SELECT …", None)
    assert [table["series"][0].as_py() for table in collect()] == ["c"]


def test_nothing_is_split_while_the_membership_changes():
    assert reads(Peers({}), changing=True).statement_answers("SELECT …", None) is None


def test_parameters_json_cannot_carry_make_the_statement_read_points_instead():
    assert reads(Peers({1: answer("b"), 2: answer("c")})).statement_answers("SELECT ?", [b"\x00"]) is None


def test_a_series_whose_owners_are_all_down_fails_the_statement_on_a_majority_side():
    with pytest.raises(OwnersUnreachable, match="no owner of some series"):
        reads(Peers({}), Members(up=(0,))).statement_answers("SELECT …", None)


@pytest.mark.parametrize("coordinator, readers", [(0, {1: [[1, 2]]}), (1, {2: [[0, 2]]}), (2, {0: [[0, 1]]})])
def test_in_three_nodes_each_coordinator_leans_on_the_next_node_and_the_third_scans_nothing(coordinator, readers):
    assert statement_readers(Ring.build(("a:1", "b:1", "c:1")), 2, coordinator, {0, 1, 2}) == readers


@settings(max_examples=60, deadline=None)
@given(st.integers(3, 7), st.integers(2, 3), st.data())
def test_every_owner_set_with_a_live_node_is_answered_for_exactly_once_by_a_live_owner(size, replication_factor, data):
    ring = Ring.build(tuple(f"n{number}:1" for number in range(size)))
    coordinator = data.draw(st.integers(0, size - 1))
    live = {coordinator} | data.draw(st.sets(st.integers(0, size - 1)))
    readers = statement_readers(ring, replication_factor, coordinator, live)
    answered = [frozenset(owners) for sets in readers.values() for owners in sets]
    reachable = {owners for owners in ring.owner_sets(replication_factor) if owners & live}
    assert len(answered) == len(set(answered))
    assert set(answered) | {owners for owners in reachable if coordinator in owners} == reachable
    assert all(node in live - {coordinator} and all(node in owners for owners in readers[node]) for node in readers)
