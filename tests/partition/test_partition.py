"""A real network partition: three nodes, each in its own network namespace, one of them cut off from the other
two by iptables while clients still reach it. The cut-off node refuses writes, the majority keeps accepting them,
and once the cut heals every node answers every acknowledged point, once."""

from __future__ import annotations

import time
from contextlib import contextmanager

import pytest
import requests

from support.cluster import (FAST_CLUSTER_ENV, Cluster, Writers, assert_each_series_lives_on_its_owners_only,
                             assert_every_node_holds_exactly, members_seen_by, refuses_writes_as_a_minority,
                             ring_state, settled_on)
from support.netns import HostNetwork, remove_leftovers, require_namespaces

from countdb.cluster.ring import Ring

PORT = 8080


@contextmanager
def network_cluster(count_server, tmp_path, size: int, **env):
    """`size` real nodes, each in its own network namespace, and the network joining them (`env`: settings over
    FAST_CLUSTER_ENV)."""
    require_namespaces()
    remove_leftovers()
    network = HostNetwork(size)
    addresses = [f"{host.address}:{PORT}" for host in network.hosts]
    cluster = None
    try:
        nodes = [count_server(tmp_path / f"node{i + 1}", argv_prefix=host.argv([]), wait=False,
                              BIND_ADDRESS=addresses[i], CLUSTER_ENABLED="true", CLUSTER_NODES=",".join(addresses),
                              NODE_ID=str(i + 1), REPLICATION_FACTOR="2", FLIGHT_PORT="0",
                              **{**FAST_CLUSTER_ENV, **env})
                 for i, host in enumerate(network.hosts)]
        for node in nodes:  # spawned side by side, then waited for
            node.wait_ready()
        cluster = Cluster(nodes, addresses, [])
        cluster.wait_formed()
        yield cluster, network
    finally:
        network.heal_all()
        if cluster is not None:
            cluster.kill()
        network.destroy()


@pytest.fixture
def partitioned_cluster(count_server, tmp_path):
    with network_cluster(count_server, tmp_path, 3) as made:
        yield made


def _insert(cluster: Cluster, node: int, series: str) -> requests.Response:
    return requests.post(cluster.url(node) + "/insert", json={"series": series, "timestamp": 1_700_000_000_000,
                                                              "value": 1.0}, timeout=15)


def test_a_cut_off_node_refuses_writes_the_majority_keeps_writing_and_all_converge_after_healing(partitioned_cluster):
    cluster, network = partitioned_cluster
    with Writers([cluster.url(0), cluster.url(2)]) as writers:
        time.sleep(1)
        network.isolate(1)
        cut = time.monotonic()
        refused_sent_at = []

        def refused_as_minority() -> bool:
            sent = time.monotonic()
            if "minority" not in _insert(cluster, 1, "island").json().get("error", ""):
                return False
            refused_sent_at.append(sent)
            return True

        # NOTE: until it counts its peers down, a write there waits for them (FORWARD_TIMEOUT_SECONDS) and fails on
        # its quorum instead; so the bound is on when the refused write was sent, not on when the test saw it.
        cluster.wait_until(refused_as_minority, 15, "the cut-off node refuses writes as a minority")
        assert refused_sent_at[0] - cut <= 3 + 0.5 + 3, "refused later than FAILURE_TIMEOUT + one heartbeat (+ slack)"

        def degraded_alone() -> bool:  # NOTE: every worker, once the agent's view says so (FAILURE_TIMEOUT)
            health = requests.get(cluster.url(1) + "/health", timeout=10).json()
            return health["status"] == "degraded" and health["cluster"]["majority"] is False

        cluster.wait_until(degraded_alone, 10, "/health says the cut-off node is in a minority")
        cluster.wait_until(lambda: refuses_writes_as_a_minority(cluster.url(1), "island"), 10,
                           "every worker of the cut-off node refuses writes as a minority")
        read = requests.get(cluster.url(1) + "/series", timeout=30)
        assert read.status_code == 200 and read.headers["X-Count-Partial"].startswith("minority")
        before = len(writers.acknowledged)
        time.sleep(3)
        assert len(writers.acknowledged) > before, "the majority stopped accepting writes"
        assert _insert(cluster, 0, "mainland").status_code == 201
        network.heal_all()
        time.sleep(1)
    cluster.wait_formed()
    assert writers.refused_only_with_retry_after(), writers.failures[:3]
    assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
    assert _insert(cluster, 1, "back").status_code == 201


def test_a_partition_in_the_middle_of_a_move_holds_it_until_it_heals_and_it_then_finishes(count_server, tmp_path):
    with network_cluster(count_server, tmp_path, 4) as (cluster, network):
        three = cluster.addresses[:3]
        with Writers([cluster.url(1)], series_prefix="p") as writers:
            cluster.wait_until(lambda: len(writers.acknowledged) > 400, 30, "points stored before the move")
            assert cluster.signed(3, "POST", "/cluster/leave").status_code == 202
            cluster.wait_until(lambda: ring_state(cluster, 0)["phase"] in ("moving", "moved"), 60, "the move began")
            network.isolate(0)  # node 1, sending and receiving series, is cut off from the others
            time.sleep(6)  # past FAILURE_TIMEOUT: the others see it down
            stuck = [ring_state(cluster, i)["phase"] for i in (1, 2, 3)]
            assert "settled" not in stuck and "settling" not in stuck, stuck  # nobody drops anything meanwhile
            network.heal_all()
            cluster.wait_until(lambda: settled_on(cluster, [0, 1, 2, 3], three), 120, "the move finishes after healing")
        assert writers.refused_only_with_retry_after(), writers.failures[:3]
        assert_each_series_lives_on_its_owners_only(cluster, writers, [0, 1, 2, 3], three)
        assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])


def _range(cluster: Cluster, index: int, series: str) -> list[int]:
    answer = requests.get(cluster.url(index) + f"/query/range/{series}",
                          params={"start": 1_700_000_000_000, "end": 1_700_000_100_000}, timeout=15)
    assert answer.status_code == 200, answer.text
    return [point["timestamp"] for point in answer.json()]


def test_a_node_that_missed_writes_merges_its_co_owners_copy_until_its_hints_arrive(count_server, tmp_path):
    """A caught-up owner answers a one-series read from its own copy (writes wait for both owners); one that
    missed writes (cut off, its hints held by a node it still can't reach) asks its co-owner too."""
    with network_cluster(count_server, tmp_path, 3, ANTI_ENTROPY_INTERVAL_SECONDS="5") as (cluster, network):
        ring = Ring.build(tuple(cluster.addresses))
        series = next(f"missed{i}" for i in range(1000) if 2 in ring.owners(f"missed{i}", 2))
        co_owner = next(node for node in ring.owners(series, 2) if node != 2)
        holder = 3 - co_owner - 2  # the third node: it keeps node 3's copy as a hint
        cluster.wait_until(lambda: all(members_seen_by(cluster, i)[i]["caught_up"] for i in range(3)), 30,
                           "every node caught up (an anti-entropy round with every peer)")
        network.isolate(2)
        points = [{"series": series, "timestamp": 1_700_000_000_000 + i * 1000, "value": float(i)} for i in range(50)]
        cluster.wait_until(lambda: requests.post(cluster.url(holder) + "/insert", json=points,
                                                 timeout=15).status_code == 201, 20, "the write taken without node 3")
        assert members_seen_by(cluster, holder)[2]["hints_pending"] > 0
        network.heal(2, co_owner)  # node 3 reaches its co-owner again, not the node holding its hints
        cluster.wait_until(lambda: members_seen_by(cluster, 2)[co_owner]["state"] == "up", 15, "node 3 sees its co-owner")
        assert members_seen_by(cluster, 2)[2]["caught_up"] is False
        assert _range(cluster, 2, series) == [point["timestamp"] for point in points]
        network.heal_all()
        cluster.wait_until(lambda: members_seen_by(cluster, 2)[2]["caught_up"], 20, "node 3 caught up: its hints delivered")
        assert members_seen_by(cluster, holder)[2]["hints_pending"] == 0
        assert _range(cluster, 2, series) == [point["timestamp"] for point in points]
