"""Membership changes with real processes: a 3-node cluster grows to 4, or to 4 and then 5 (each new node started
with the longer CLUSTER_NODES, then a rolling restart of the others with it), and shrinks back to 3 (`countdb cluster
leave` on the newest node each time), under continuous writes and queries: no write is refused, no query misses a point, and
after each change every node answers every acknowledged point exactly once, and each series is stored on its owners
in the new ring and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from support.cluster import (FAST_CLUSTER_ENV, KNOWN, Cluster, Readers, Writers,
                             assert_each_series_lives_on_its_owners_only, assert_every_node_holds_exactly, free_ports,
                             ring_state, settled_on)


def all_see_their_nodes(cluster: Cluster) -> bool:
    """Every node reaches every node of its list (before the next restart, as an operator waits)."""
    for index in range(len(cluster.nodes)):
        seen = requests.get(cluster.url(index) + "/health", timeout=10).json()["cluster"]
        if seen["members_up"] != seen["nodes"]:
            return False
    return True


def following(writers: Writers, previous: Writers) -> Writers:
    """`writers` also answers for what `previous` wrote: every check after a change covers every change before."""
    writers.acknowledged |= previous.acknowledged
    writers.attempted |= previous.attempted
    return writers


def add_node(cluster: Cluster, count_server, folder: Path, previous: Writers) -> Writers:
    """Start one node more with the longer CLUSTER_NODES, then restart the others with it one at a time, while
    writes and queries go through the new node (it writes to the owners in both rings from its start); returns
    the writers, every check passed."""
    port, flight_port = free_ports(2)
    longer = cluster.addresses + [f"127.0.0.1:{port}"]
    node = count_server(folder / f"node{len(longer)}", BIND_ADDRESS=longer[-1], CLUSTER_ENABLED="true",
                        CLUSTER_NODES=",".join(longer), NODE_ID=str(len(longer)), FLIGHT_PORT=str(flight_port),
                        REPLICATION_FACTOR="2", **FAST_CLUSTER_ENV)
    cluster.nodes.append(node)
    cluster.addresses.append(longer[-1])
    everyone = list(range(len(longer)))
    new = everyone[-1]
    with following(Writers([cluster.url(new)], series_prefix="w"), previous) as writers, \
            Readers(cluster.url(new)) as readers:
        for index in everyone[:-1]:
            other = cluster.nodes[index]
            other.env["CLUSTER_NODES"] = ",".join(longer)
            assert other.stop() == 0
            other.start()
            cluster.wait_until(lambda: all_see_their_nodes(cluster), 30, f"node {index + 1} is seen again")
        cluster.wait_until(lambda: settled_on(cluster, everyone, longer), 120,
                           f"all {len(longer)} settle on the new ring")
    check_change(cluster, writers, readers, everyone, longer)
    return writers


def leave(cluster: Cluster, previous: Writers) -> Writers:
    """`countdb cluster leave` on the newest node still in the ring, under writes through node 1 and queries
    through node 2; once the others settle without it, it is stopped. Returns the writers, every check passed."""
    staying = len(ring_state(cluster, 0)["target"]) - 1
    remaining, leaving = cluster.addresses[:staying], cluster.nodes[staying]
    with following(Writers([cluster.url(0)], series_prefix="w"), previous) as writers, \
            Readers(cluster.url(1)) as readers:
        command = subprocess.run([sys.executable, "-m", "countdb", "cluster", "leave", "--json"], env={
            **os.environ, **leaving.env, "DATA_DIR": str(leaving.data_dir)}, capture_output=True, text=True,
            timeout=120)
        assert command.returncode == 0, command.stderr
        assert orjson.loads(command.stdout)["left"] is True
        cluster.wait_until(lambda: settled_on(cluster, list(range(staying)), remaining), 60,
                           f"the other {staying} settle without node {staying + 1}")
    check_change(cluster, writers, readers, list(range(staying + 1)), remaining)
    assert leaving.stop() == 0
    assert_every_node_holds_exactly(cluster, writers, list(range(staying)))
    return writers


def check_change(cluster: Cluster, writers: Writers, readers: Readers, nodes: list[int], ring: list[str]) -> None:
    assert writers.failures == [], writers.failures[:3]
    assert readers.answers > 10 and not readers.wrong, readers.wrong[:3]  # no query missed a point
    assert_every_node_holds_exactly(cluster, writers, list(range(len(ring))))
    assert_each_series_lives_on_its_owners_only(cluster, writers, nodes, ring)


@pytest.mark.parametrize("largest", [4, pytest.param(5, marks=pytest.mark.slow)])
def test_grow_and_shrink_under_writes(start_cluster, count_server, tmp_path, largest):
    """3 -> 4 -> 3 in the default run (about 90 s); 3 -> 4 -> 5 -> 4 -> 3 with `pytest -m slow` (about 4 min)."""
    cluster = start_cluster(3)
    assert requests.post(cluster.url(0) + "/insert", json=KNOWN, timeout=30).status_code == 201
    with Writers([cluster.url(0)], series_prefix="w") as writers:
        cluster.wait_until(lambda: len(writers.acknowledged) > 600, 30, "points stored before the change")
    for _ in range(3, largest):
        writers = add_node(cluster, count_server, tmp_path, writers)
    for _ in range(3, largest):
        writers = leave(cluster, writers)
    health = requests.get(cluster.url(0) + "/health", timeout=10).json()
    assert health["status"] == "healthy" and health["cluster"]["nodes"] == 3, health


def test_kill_9_of_the_sending_and_then_the_receiving_node_in_the_middle_of_a_move(start_cluster):
    cluster = start_cluster(4)
    four, three = list(cluster.addresses), list(cluster.addresses[:3])
    with Writers([cluster.url(1)], series_prefix="k") as writers:
        cluster.wait_until(lambda: len(writers.acknowledged) > 600, 30, "points stored before the change")
        assert cluster.signed(3, "POST", "/cluster/leave").status_code == 202
        for victim in (3, 0):  # node 4 sends its series away; node 1 receives some of them
            cluster.wait_until(lambda: ring_state(cluster, victim)["phase"] in ("moving", "moved"), 60,
                               f"node {victim + 1} is in the middle of the move")
            cluster.nodes[victim].kill_all()
            cluster.nodes[victim].start()
        cluster.wait_until(lambda: settled_on(cluster, [0, 1, 2, 3], three), 120, "the move finishes after the kills")
    assert writers.refused_only_with_retry_after(), writers.failures[:3]
    assert_each_series_lives_on_its_owners_only(cluster, writers, [0, 1, 2, 3], three)
    assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
    assert four[3] not in ring_state(cluster, 0)["target"]
