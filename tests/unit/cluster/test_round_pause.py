"""How long the agent pauses between anti-entropy rounds: the interval, or nine times the last whole round when
that is longer (a round hashes every point two nodes share, so under load it must not run back to back), up to
four intervals; a heartbeat while the membership changes."""

from __future__ import annotations

import time

import pytest

from countdb.cluster.agent import Agent
from countdb.cluster.layout import RingState
from countdb.cluster.members import Member
from countdb.cluster.peers import PeerError
from countdb.config import Settings
from countdb.datadir import DataDir

NODES = ("a:1", "b:1", "c:1")


@pytest.fixture
def node(tmp_path) -> Agent:
    settings = Settings.for_tests(tmp_path, cluster_enabled=True, cluster_nodes=NODES, node_id="1",
                                  cluster_secret="s", anti_entropy_interval_seconds=5.0,
                                  heartbeat_interval_seconds=1.0)
    agent = Agent(settings, DataDir(tmp_path).create(), peers=None)
    agent.members = {n: Member(n, address, time.time(), None) for n, address in enumerate(NODES)}
    return agent


def last_round_took(node: Agent, seconds: float) -> None:
    node.repairs = {"started": 100.0, "finished": 100.0 + seconds, "peers": {"2": {}, "3": {}}}


def rounds_taking(node: Agent, seconds: float, failing: tuple[int, ...] = ()) -> None:
    def repair_with(peer, settled_before=None):
        time.sleep(seconds / 2)
        if peer in failing:
            raise PeerError(peer, NODES[peer], "no answer within 2 s")
        return {"cells_differing": 0}

    node.repair_with = repair_with
    node.anti_entropy()


def test_the_pause_is_the_interval_after_a_short_round_and_nine_times_a_long_one_up_to_four_intervals(node):
    assert node.next_round_seconds() == 5.0  # no round yet
    rounds_taking(node, 0.2)
    assert node.next_round_seconds() == 5.0
    last_round_took(node, 1.0)
    assert node.next_round_seconds() == 9.0
    rounds_taking(node, 0.8)
    assert 7.2 <= node.next_round_seconds() <= 9.0
    last_round_took(node, 3.0)
    assert node.next_round_seconds() == 20.0


def test_a_round_cut_short_by_a_peer_that_did_not_answer_leaves_the_interval(node):
    rounds_taking(node, 0.8, failing=(2,))
    assert node.next_round_seconds() == 5.0 and not node.compared_with_all


def test_a_membership_change_takes_a_round_every_heartbeat_whatever_the_last_round_took(node):
    last_round_took(node, 3.0)
    node.ring_state = RingState(NODES, NODES[:2], (), "moving", 0.0)
    assert node.next_round_seconds() == 1.0
