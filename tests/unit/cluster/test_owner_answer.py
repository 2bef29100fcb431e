"""ClusterReads.owner_answer: a node that does not own a series relays one caught-up owner's whole answer when one
copy is a read quorum; otherwise (or when that owner fails) the query is answered here from the owners' points."""

from types import SimpleNamespace

import pytest

from countdb.cluster.peers import PeerError
from countdb.cluster.reads import ClusterReads, read_copies
from countdb.cluster.ring import Ring

RING = Ring.build(("a:1", "b:1", "c:1", "d:1"))
FIRST, SECOND = RING.owners("s", 2)
OUTSIDER = next(node for node in range(4) if node not in (FIRST, SECOND))


class Response:
    def __init__(self, status: int):
        self.status = status
        self.closed = False

    def close(self):
        self.closed = True


class Peers:
    """Answers with `status`, or fails like an unreachable node for `down`; records what it was asked."""

    def __init__(self, status: int = 200, down: tuple[int, ...] = ()):
        self.status = status
        self.down = down
        self.asked: list[tuple] = []
        self.response = Response(status)

    def send(self, node, method, path, params=None, timeout_seconds=None, stream=False):
        self.asked.append((node, method, path, params))
        if node in self.down:
            raise PeerError(node, f"127.0.0.1:{node}", "unreachable (ConnectionError)")
        return self.response


class Members:
    def __init__(self, self_node: int, catching_up: tuple[int, ...] = (), down: tuple[int, ...] = ()):
        self.self_node = self_node
        self.catching_up = catching_up
        self.down = down
        self.suspects: list[int] = []

    def is_up(self, node):
        return node not in self.down

    def caught_up(self, node):
        return node not in self.catching_up

    def suspect(self, node):
        self.suspects.append(node)


def answer(members: Members, peers: Peers, copies: int = 2, write_copies: int = 2):
    layout = SimpleNamespace(read_ring=RING)
    reads = ClusterReads(lambda: layout, copies, read_copies(copies, write_copies), members, peers, 40.0)
    return reads.owner_answer("range", "s", {"start": "0", "end": "10", "format": "json"})


def test_a_non_owner_relays_the_first_caught_up_owners_answer_to_the_same_query():
    peers = Peers()
    assert answer(Members(OUTSIDER), peers) is peers.response
    assert peers.asked == [(FIRST, "GET", "/cluster/answer/range", {"start": "0", "end": "10", "format": "json",
                                                                    "series": "s"})]
    peers = Peers()
    assert answer(Members(OUTSIDER, catching_up=(FIRST,)), peers) is peers.response and peers.asked[0][0] == SECOND
    peers = Peers()
    assert answer(Members(OUTSIDER, down=(FIRST,)), peers) is peers.response and peers.asked[0][0] == SECOND


@pytest.mark.parametrize("members, copies, write_copies", [
    (Members(FIRST), 2, 2),  # an owner answers from its own copy
    (Members(OUTSIDER), 2, 1),  # writes wait for one owner: a read merges both copies
    (Members(OUTSIDER, catching_up=(FIRST, SECOND)), 2, 2),  # no copy is known whole
    (Members(OUTSIDER, down=(FIRST,), catching_up=(SECOND,)), 2, 2),
])
def test_the_query_is_answered_here_when_one_owners_answer_is_not_known_whole(members, copies, write_copies):
    peers = Peers()
    assert answer(members, peers, copies, write_copies) is None and peers.asked == []


def test_an_owner_that_is_unreachable_is_suspected_and_the_query_answered_here():
    members, peers = Members(OUTSIDER), Peers(down=(FIRST,))
    assert answer(members, peers) is None and members.suspects == [FIRST]


@pytest.mark.parametrize("status, relayed", [(200, True), (400, True), (422, True), (504, True),
                                             (404, False), (500, False), (503, False)])
def test_the_owners_refusal_or_time_out_is_relayed_and_a_failure_or_missing_route_answered_here(status, relayed):
    peers = Peers(status)
    assert (answer(Members(OUTSIDER), peers) is peers.response) == relayed
    assert peers.response.closed != relayed
