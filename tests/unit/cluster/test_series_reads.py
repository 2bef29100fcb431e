"""ClusterReads.series_points: which owners a one-series read asks. Enough caught-up owners to meet every write's
quorum (R = RF − W + 1), this node counting when it is one; owners that fail or are still catching up are made up
for by the next ones."""

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pyarrow as pa
import pytest

from countdb.cluster.peers import PeerError
from countdb.cluster.reads import ClusterReads, OwnersUnreachable, read_copies
from countdb.cluster.ring import Ring
from countdb.cluster.wire import encode_stream

RING = Ring.build(("a:1", "b:1", "c:1", "d:1"))


class Peers:
    """Answers /cluster/points with one point per node (its value: the node's number), or fails for `down`."""

    def __init__(self, down: tuple[int, ...] = ()):
        self.down = down
        self.pool = ThreadPoolExecutor(4)
        self.asked: list[int] = []

    def call(self, node, method, path, body):
        self.asked.append(node)
        if node in self.down:
            raise PeerError(node, f"127.0.0.1:{node}", "refused")
        table = pa.table({"series": ["s"], "ts": [node], "value": [float(node)], "seq": [1]})
        return SimpleNamespace(data=encode_stream(table))


class Members:
    def __init__(self, self_node: int, catching_up: tuple[int, ...] = ()):
        self.self_node = self_node
        self.catching_up = catching_up

    def is_up(self, node):
        return True

    def caught_up(self, node):
        return node not in self.catching_up

    def has_majority(self):
        return True

    def suspect(self, node):
        pass


def owners(series: str, copies: int) -> list[int]:
    return RING.owners(series, copies)


def outsider(copies: int) -> int:
    return next(node for node in range(4) if node not in owners("s", copies))


def read(members: Members, peers: Peers, copies: int, write_copies: int):
    layout = SimpleNamespace(read_ring=RING)
    reads = ClusterReads(lambda: layout, copies, read_copies(copies, write_copies), members, peers, 40.0)
    return reads.series_points("s", 0, 10)


@pytest.mark.parametrize("copies, write_copies, expected", [(2, 2, 1), (3, 2, 2), (2, 1, 2), (3, 3, 1), (3, 1, 3)])
def test_a_read_asks_enough_owners_to_meet_every_write_quorum(copies, write_copies, expected):
    assert read_copies(copies, write_copies) == expected


def test_a_caught_up_owner_answers_from_its_own_copy_alone_when_writes_wait_for_every_owner():
    peers = Peers()
    assert read(Members(owners("s", 2)[1]), peers, 2, 2) is None and peers.asked == []


def test_an_owner_still_catching_up_merges_its_co_owners_copy():
    me, other = owners("s", 2)[1], owners("s", 2)[0]
    peers = Peers()
    remote = read(Members(me, catching_up=(me,)), peers, 2, 2)
    assert peers.asked == [other] and remote.mode == "merge" and remote.table["ts"].to_pylist() == [other]


def test_a_non_owner_asks_one_owner_and_skips_one_that_is_catching_up():
    first, second = owners("s", 2)
    peers = Peers()
    assert read(Members(outsider(2)), peers, 2, 2).mode == "only" and peers.asked == [first]
    peers = Peers()
    assert read(Members(outsider(2), catching_up=(first,)), peers, 2, 2).table["ts"].to_pylist() == [second]
    assert peers.asked == [second]


def test_an_owner_that_fails_or_is_only_catching_up_is_made_up_for_by_the_next():
    first, second = owners("s", 2)
    peers = Peers(down=(first,))
    assert read(Members(outsider(2)), peers, 2, 2).table["ts"].to_pylist() == [second]
    assert peers.asked == [first, second]
    peers = Peers()
    remote = read(Members(outsider(2), catching_up=(first, second)), peers, 2, 2)
    assert sorted(peers.asked) == sorted(remote.table["ts"].to_pylist()) == sorted([first, second])


def test_writes_that_wait_for_one_owner_are_read_from_every_owner():
    me = owners("s", 3)[0]
    peers = Peers()
    read(Members(me), peers, 3, 1)
    assert sorted(peers.asked) == sorted(owners("s", 3)[1:])


def test_no_owner_answering_a_non_owner_is_a_503_naming_them():
    with pytest.raises(OwnersUnreachable, match="no owner of series 's'"):
        read(Members(outsider(2)), Peers(down=tuple(owners("s", 2))), 2, 2)
