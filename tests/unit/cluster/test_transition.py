"""Transition: a node advances through a membership change only on what every node of both rings reported."""

from countdb.cluster.layout import RingState
from countdb.cluster.transition import PeerView, Transition

NODES = ("n1:1", "n2:1", "n3:1", "n4:1")
THREE, FOUR = NODES[:3], NODES


def view(phase: str, settled=THREE, target=FOUR, hints: int = 0, left=()) -> PeerView:
    return PeerView(settled, target, left, phase, hints)


def everyone(phase: str, **kwargs) -> dict:
    return {node: view(phase, **kwargs) for node in (1, 2, 3)}


def test_waiting_ends_only_when_every_node_of_both_rings_agrees_and_no_hint_is_pending():
    transition, state = Transition(NODES, 0, grace_seconds=2), RingState(THREE, FOUR, (), "waiting")
    assert transition.advance(state, {**everyone("waiting"), 3: None}, 0, 0).phase == "waiting"  # node 4 silent
    not_restarted = {**everyone("waiting"), 2: view("settled", THREE, THREE)}  # node 3 still runs the old list
    assert transition.advance(state, not_restarted, 0, 0).phase == "waiting"
    assert transition.advance(state, everyone("waiting"), 1, 0).phase == "waiting"  # this node holds a hint
    assert transition.advance(state, {**everyone("waiting"), 1: view("waiting", hints=3)}, 0, 0).phase == "waiting"
    assert transition.advance(state, everyone("waiting"), 0, 0).phase == "moving"


def test_switching_waits_for_every_node_to_have_moved_and_settling_for_a_grace_after_all_switched():
    transition = Transition(NODES, 0, grace_seconds=2)
    moved = RingState(THREE, FOUR, (), "moved")
    assert transition.advance(moved, {**everyone("moved"), 2: view("moving")}, 0, 0).phase == "moved"
    assert transition.advance(moved, everyone("moved"), 0, 0).phase == "switched"
    switched = RingState(THREE, FOUR, (), "switched")
    peers = {**everyone("switched"), 1: view("settled", FOUR, FOUR)}  # a node that settled already counts
    assert transition.advance(switched, peers, 0, 10.0).phase == "switched"
    assert transition.advance(switched, {**peers, 3: view("moved")}, 0, 11.0).phase == "switched"  # grace restarts
    assert transition.advance(switched, peers, 0, 12.0).phase == "switched"
    assert transition.advance(switched, peers, 0, 14.5).phase == "settling"


def test_a_leave_reported_by_a_peer_becomes_this_nodes_target_and_restarts_a_change_in_progress():
    transition = Transition(NODES, 0, grace_seconds=2)
    settled = RingState(FOUR, FOUR, (), "settled")
    leaving = transition.advance(settled, {3: view("waiting", FOUR, THREE, left=("n4:1",))}, 0, 0)
    assert (leaving.phase, leaving.target, leaving.left) == ("waiting", THREE, ("n4:1",))
    moving = RingState(THREE, FOUR, (), "moving")
    assert transition.advance(moving, {1: view("waiting", THREE, THREE, left=("n4:1",))}, 0, 0).phase == "settled"
    unchanged = RingState(FOUR, FOUR, (), "settled")
    assert transition.advance(unchanged, everyone("settled", settled=FOUR, target=FOUR), 0, 0) is unchanged
