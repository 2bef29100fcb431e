"""Layout: which rings writes, quorums and reads use in each phase of a membership change, and what a node keeps."""

import pytest

from countdb.cluster.layout import Layout, RingState, UnknownMember, ring_of, write_state
from countdb.cluster.process import ring_problem

NODES = ("n1:1", "n2:1", "n3:1", "n4:1")
THREE, FOUR = NODES[:3], NODES


def layout(phase: str, settled=THREE, target=FOUR, rf: int = 2) -> Layout:
    return Layout.of(NODES, RingState(settled, target, (), phase), rf)


def test_a_ring_of_some_listed_nodes_keeps_their_numbers_and_gives_the_others_nothing():
    ring = ring_of(NODES, THREE)
    assert ring.active == {0, 1, 2} and ring.addresses == THREE
    assert all(3 not in ring.owners(f"s{i}", 2) for i in range(500))
    assert ring.shares(2)[3] == 0.0
    assert ring_of(NODES, FOUR).owners("x", 2) != () and len(ring_of(NODES, FOUR).preference("x")) == 4
    with pytest.raises(UnknownMember):
        ring_of(NODES, ("elsewhere:1",))


def test_growing_from_three_to_four_moves_about_a_quarter_of_the_copies():
    three, four = ring_of(NODES, THREE), ring_of(NODES, FOUR)
    keys = [f"series{i}" for i in range(4000)]
    moved = sum(len(set(four.owners(k, 2)) - set(three.owners(k, 2))) for k in keys)
    assert 0.20 <= moved / (2 * len(keys)) <= 0.30


def test_each_phase_uses_the_rings_its_invariant_needs():
    settled_ring, target_ring = ring_of(NODES, THREE), ring_of(NODES, FOUR)
    expected = {  # phase: (write rings, quorum rings, read ring, merges selections)
        "waiting": ((settled_ring, target_ring), (settled_ring, target_ring), settled_ring, True),
        "moving": ((settled_ring, target_ring), (settled_ring, target_ring), settled_ring, True),
        "moved": ((settled_ring, target_ring), (settled_ring, target_ring), settled_ring, True),
        "switched": ((settled_ring, target_ring), (target_ring,), target_ring, True),
        "settling": ((target_ring,), (target_ring,), target_ring, True),
    }
    for phase, (writes, quorums, reads, merges) in expected.items():
        current = layout(phase)
        assert (current.write_rings(), current.quorum_rings(), current.read_ring, current.merges_selections) == \
            (writes, quorums, reads, merges), phase
    settled = layout("settled", FOUR, FOUR)
    assert (settled.write_rings(), settled.quorum_rings(), settled.read_ring, settled.merges_selections) == \
        ((target_ring,), (target_ring,), target_ring, False)


def test_a_node_restarted_with_another_list_starts_the_change_from_its_settled_state():
    assert layout("settled").phase == "waiting"
    assert Layout.of(NODES, None, 2).phase == "settled" and Layout.of(NODES, None, 2).target.active == {0, 1, 2, 3}


def test_writes_go_to_the_owners_in_both_rings_and_a_settling_node_keeps_only_what_it_owns():
    moving = layout("moving")
    key = next(f"k{i}" for i in range(1000) if set(moving.target.owners(f"k{i}", 2)) != set(moving.settled.owners(f"k{i}", 2)))
    old, new = moving.settled.owners(key, 2), moving.target.owners(key, 2)
    assert set(moving.owners(key)) == set(old) | set(new) and moving.owners(key)[:2] == old
    gone = next(node for node in old if node not in new)
    assert moving.keeps(key, gone) and not layout("settling").keeps(key, gone)
    arriving = next(node for node in new if node not in old)
    assert moving.co_owned(key, gone, arriving)  # the streaming pair
    assert not layout("switched").co_owned(key, gone, arriving)


def test_a_node_refuses_to_start_when_its_list_drops_a_node_that_still_holds_series(tmp_path):
    write_state(tmp_path, RingState(FOUR, FOUR))
    assert ring_problem(tmp_path, FOUR) is None and ring_problem(tmp_path / "fresh", THREE) is None
    assert "CLUSTER_NODES lacks n4:1" in ring_problem(tmp_path, THREE)
    (tmp_path / "ring.json").write_text("{not json")
    assert "unreadable" in ring_problem(tmp_path, FOUR)


def test_a_settling_node_keeps_only_the_rows_of_the_series_it_still_owns():
    import pyarrow as pa

    settling = layout("settling")
    keys = [f"k{i}" for i in range(200)]
    gone = next(node for node in range(3) if any(not settling.keeps(key, node) for key in keys))
    for series in (pa.array(keys), pa.array(keys).dictionary_encode()):
        table = pa.table({"series": series, "ts": pa.array(range(200), pa.int64())})
        kept = settling.kept_rows(table, gone)
        assert [str(key) for key in kept["series"].to_pylist()] == [key for key in keys if settling.keeps(key, gone)]
        moving = layout("moving")  # before settling it also keeps what it owned in the settled ring
        assert moving.kept_rows(table, gone).num_rows == sum(moving.keeps(key, gone) for key in keys) > kept.num_rows
    # a coordinator's copy: the request's whole dictionary, rows of this node's series only: kept as it is
    copy = pa.table({"series": pa.array(keys).dictionary_encode(), "ts": pa.array(range(200), pa.int64())}).filter(
        pa.array([settling.keeps(key, gone) for key in keys]))
    assert len(copy["series"].chunk(0).dictionary) == 200 and settling.kept_rows(copy, gone) is copy


def test_hints_kept_on_one_node_for_two_owners_are_one_copy():
    from countdb.cluster.coordinator import copies

    settled = layout("settled", FOUR, FOUR)
    owners = settled.target.owners("k", 2)
    holder = next(node for node in range(4) if node not in owners)
    both_hinted_on_one_node = {(holder, owners[0]): {0}, (holder, owners[1]): {0}}
    assert copies("k", 0, both_hinted_on_one_node, settled) == 1  # an isolated coordinator must not count two
    assert copies("k", 0, {owners[0]: {0}, (holder, owners[1]): {0}}, settled) == 2
