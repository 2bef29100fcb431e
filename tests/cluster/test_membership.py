"""Membership changes with real processes: a 3-node cluster grows to 4 (a node started with the longer
CLUSTER_NODES, then a rolling restart of the others with it) and shrinks back (`countdb cluster leave` on the
fourth), under continuous writes and queries: no write is refused, no query misses a point, and after each change
every node answers every acknowledged point exactly once, and each series is stored on its owners in the new ring
and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
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


def test_grow_from_three_to_four_nodes_and_back_under_writes(start_cluster, count_server, tmp_path):
    cluster = start_cluster(3)
    three = list(cluster.addresses)
    port, flight_port = free_ports(2)
    four = three + [f"127.0.0.1:{port}"]
    assert requests.post(cluster.url(0) + "/insert", json=KNOWN, timeout=30).status_code == 201
    with Writers([cluster.url(0)], series_prefix="w") as before:
        cluster.wait_until(lambda: len(before.acknowledged) > 600, 30, "points stored before the change")
    node4 = count_server(tmp_path / "node4", BIND_ADDRESS=four[3], CLUSTER_ENABLED="true", CLUSTER_NODES=",".join(four),
                         NODE_ID="4", FLIGHT_PORT=str(flight_port), REPLICATION_FACTOR="2",
                         **FAST_CLUSTER_ENV)
    cluster.nodes.append(node4)
    cluster.addresses.append(four[3])
    # the new node takes writes from the start: it writes them to the owners in both rings
    with Writers([cluster.url(3)], series_prefix="w") as during, Readers(cluster.url(3)) as reads_during:
        during.acknowledged |= before.acknowledged
        during.attempted |= before.attempted
        for index in range(3):  # a rolling restart of the others with the longer list, one node at a time
            node = cluster.nodes[index]
            node.env["CLUSTER_NODES"] = ",".join(four)
            assert node.stop() == 0
            node.start()
            cluster.wait_until(lambda: all_see_their_nodes(cluster), 30, f"node {index + 1} is seen again")
        cluster.wait_until(lambda: settled_on(cluster, [0, 1, 2, 3], four), 120, "all four settle on the new ring")
    assert during.failures == [], during.failures[:3]
    assert reads_during.answers > 20 and not reads_during.wrong, reads_during.wrong[:3]  # no query missed a point
    assert_every_node_holds_exactly(cluster, during, [0, 1, 2, 3])
    assert_each_series_lives_on_its_owners_only(cluster, during, [0, 1, 2, 3], four)

    with Writers([cluster.url(0)], series_prefix="w") as leaving, Readers(cluster.url(1)) as reads_leaving:
        leaving.acknowledged |= during.acknowledged
        leaving.attempted |= during.attempted
        command = subprocess.run([sys.executable, "-m", "countdb", "cluster", "leave", "--json"], env={
            **os.environ, **node4.env, "DATA_DIR": str(node4.data_dir)}, capture_output=True, text=True, timeout=120)
        assert command.returncode == 0, command.stderr
        assert orjson.loads(command.stdout)["left"] is True
        cluster.wait_until(lambda: settled_on(cluster, [0, 1, 2], three), 60, "the other three settle without node 4")
    assert leaving.failures == [], leaving.failures[:3]
    assert reads_leaving.answers > 10 and not reads_leaving.wrong, reads_leaving.wrong[:3]
    assert_each_series_lives_on_its_owners_only(cluster, leaving, [0, 1, 2, 3], three)
    assert node4.stop() == 0
    assert_every_node_holds_exactly(cluster, leaving, [0, 1, 2])
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
