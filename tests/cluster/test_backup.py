"""Cluster backup and restore with real processes: `countdb backup` on every node of a running 3-node cluster under
writes, then `countdb restore` of each archive into an empty data directory, gives back a cluster of the same size
that answers every point acknowledged before the backups began, once, from every node; and that cluster shrinks to
2 nodes (`countdb cluster leave`, the documented way to restore into another size) with every point still there."""

from __future__ import annotations

import os
import subprocess
import sys

from support.cluster import (Writers, assert_each_series_lives_on_its_owners_only, assert_every_node_holds_exactly,
                             settled_on)


def countdb(*args: str, env: dict | None = None) -> str:
    result = subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=120,
                            env=None if env is None else {**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_backup_of_every_node_restores_the_whole_cluster_of_the_same_size_or_smaller(start_cluster, tmp_path):
    cluster = start_cluster(3)
    with Writers([cluster.url(0), cluster.url(1)], series_prefix="b") as writers:
        cluster.wait_until(lambda: len(writers.acknowledged) > 500, 30, "points written")
        before = set(writers.acknowledged)
        for index, node in enumerate(cluster.nodes):  # while the writes go on
            countdb("backup", str(tmp_path / f"backup{index + 1}.tar.gz"), "--data-dir", str(node.data_dir))
    cluster.stop()
    for index, node in enumerate(cluster.nodes):
        node.data_dir = tmp_path / f"restored{index + 1}"
        countdb("restore", str(tmp_path / f"backup{index + 1}.tar.gz"), "--data-dir", str(node.data_dir))
    for node in cluster.nodes:
        node.start()
    cluster.wait_formed()
    writers.acknowledged = before  # what the set must hold; later points may be in it too, each once
    assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])

    leaving = cluster.nodes[2]  # into 2 nodes: the third streams its series to the other two, then stops
    countdb("cluster", "leave", env={**leaving.env, "DATA_DIR": str(leaving.data_dir)})
    cluster.wait_until(lambda: settled_on(cluster, [0, 1], cluster.addresses[:2]), 60, "two nodes settle without node 3")
    assert leaving.stop() == 0
    assert_every_node_holds_exactly(cluster, writers, [0, 1])
    assert_each_series_lives_on_its_owners_only(cluster, writers, [0, 1], cluster.addresses[:2])
