"""Fixtures for cluster tests: `start_cluster(n, **env)` starts n real nodes and waits until they see each other."""

from __future__ import annotations

import pytest

from support.cluster import FAST_CLUSTER_ENV, Cluster, free_ports


@pytest.fixture
def start_cluster(count_server, tmp_path):
    def start(size: int = 3, replication_factor: int = 2, **env) -> Cluster:
        ports = free_ports(size)
        addresses = [f"127.0.0.1:{port}" for port in ports]
        nodes = []
        for index, port in enumerate(ports):
            nodes.append(count_server(
                tmp_path / f"node{index + 1}", BIND_ADDRESS=f"127.0.0.1:{port}", CLUSTER_ENABLED="true",
                CLUSTER_NODES=",".join(addresses), NODE_ID=str(index + 1), REPLICATION_FACTOR=str(replication_factor),
                **{**FAST_CLUSTER_ENV, **env}))
        cluster = Cluster(nodes, addresses)
        cluster.wait_formed()
        return cluster

    return start
