"""Fixtures for cluster tests: `start_cluster(n, **env)` starts n real nodes and waits until they see each other;
`shared_cluster` is one 3-node cluster (RF=2) for the tests of a module that don't stop nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cluster import FAST_CLUSTER_ENV, Cluster, free_ports


def _start(count_server, folder: Path, size: int, replication_factor: int, env: dict) -> Cluster:
    ports = free_ports(2 * size)
    addresses = [f"127.0.0.1:{port}" for port in ports[:size]]
    nodes = [count_server(folder / f"node{index + 1}", wait=False, BIND_ADDRESS=address, CLUSTER_ENABLED="true",
                          CLUSTER_NODES=",".join(addresses), NODE_ID=str(index + 1), FLIGHT_PORT=str(ports[size + index]),
                          REPLICATION_FACTOR=str(replication_factor), **{**FAST_CLUSTER_ENV, **env})
             for index, address in enumerate(addresses)]
    for node in nodes:  # spawned side by side, then waited for
        node.wait_ready()
    cluster = Cluster(nodes, addresses, ports[size:])
    cluster.wait_formed()
    return cluster


@pytest.fixture
def start_cluster(count_server, tmp_path):
    started: list[Cluster] = []

    def start(size: int = 3, replication_factor: int = 2, **env) -> Cluster:
        started.append(_start(count_server, tmp_path, size, replication_factor, env))
        return started[-1]

    yield start
    for cluster in started:  # a cluster left running would slow every later test's heartbeats
        cluster.kill()


@pytest.fixture(scope="module")
def shared_cluster(count_server, tmp_path_factory):
    cluster = _start(count_server, tmp_path_factory.mktemp("cluster"), 3, 2, {})
    yield cluster
    cluster.kill()
