"""Cluster backup and restore with real processes: `countdb backup` on every node of a running 3-node cluster under
writes, then `countdb restore` of each archive into an empty data directory, gives back a cluster of the same size
that answers every point acknowledged before the backups began, once, from every node."""

from __future__ import annotations

import subprocess
import sys

from support.cluster import Writers, assert_every_node_holds_exactly


def countdb(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_backup_of_every_node_restores_the_whole_cluster(start_cluster, tmp_path):
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
