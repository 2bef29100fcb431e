"""When the agent says its node is caught up (so a one-series read may take its copy alone): once an anti-entropy
round has reached every peer of its ring since it started, while every peer's last heartbeat said it holds no hint
for it."""

from __future__ import annotations

from countdb.cluster.agent import Agent
from countdb.cluster.layout import RingState
from countdb.config import Settings
from countdb.datadir import DataDir

NODES = ("a:1", "b:1", "c:1", "d:1")


def agent(tmp_path) -> Agent:
    settings = Settings.for_tests(tmp_path, cluster_enabled=True, cluster_nodes=NODES[:3], node_id="1",
                                  cluster_secret="s")
    return Agent(settings, DataDir(tmp_path), peers=None)


def test_a_node_is_caught_up_only_after_a_round_with_every_peer_and_while_no_peer_holds_hints_for_it(tmp_path):
    node = agent(tmp_path)
    node.hints_for_me = {1: 0, 2: 0}
    assert not node.caught_up()  # no anti-entropy round yet: it may have come back with an empty disk
    node.compared_with_all = True
    assert node.caught_up()
    node.hints_for_me = {1: 0, 2: 3}
    assert not node.caught_up()  # node 3 holds writes it missed
    node.hints_for_me = {1: 0}
    assert not node.caught_up()  # node 3 did not answer: it may hold some


def test_a_node_that_left_the_ring_is_not_waited_for(tmp_path):
    node = agent(tmp_path)
    node.compared_with_all, node.hints_for_me = True, {1: 0}
    node.ring_state = RingState(NODES[:2], NODES[:2], (NODES[2],), "settled", 0.0)
    assert node.caught_up()
