"""The agent's loops (cluster/agent.py run): heartbeats go on while hints are delivered or a repair runs, however
long those take. A heartbeat held past FAILURE_TIMEOUT makes a node count its peers down and refuse writes as a
minority: after a restart, a node's backlog of hints once did that to every node of a cluster under writes."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from countdb.cluster.agent import run

INTERVAL = 0.05


class StuckAgent:
    """Hint delivery and anti-entropy block until released; heartbeats are counted."""

    def __init__(self):
        self.settings = SimpleNamespace(heartbeat_interval_seconds=INTERVAL)
        self.heartbeats = 0
        self.delivering = threading.Event()
        self.repairing = threading.Event()
        self.release = threading.Event()

    def heartbeat(self):
        self.heartbeats += 1

    def deliver_hints(self):
        self.delivering.set()
        self.release.wait(10)

    def next_round_seconds(self):
        return INTERVAL

    def step(self):
        self.repairing.set()
        self.release.wait(10)


def test_heartbeats_go_on_while_hints_are_delivered_and_a_repair_runs():
    agent, stop = StuckAgent(), threading.Event()
    loops = threading.Thread(target=run, args=(agent, stop))
    loops.start()
    try:
        assert agent.delivering.wait(5) and agent.repairing.wait(5)
        before = agent.heartbeats
        time.sleep(20 * INTERVAL)
        assert agent.heartbeats - before >= 5
    finally:
        stop.set()
        agent.release.set()
        loops.join(10)
    assert not loops.is_alive()
