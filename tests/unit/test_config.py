"""Settings.from_env: defaults, aliases, and one clear line per bad variable (also from the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from countdb.config import ENVIRONMENT, Settings, usable_cpu_count
from countdb.errors import ConfigError


def test_defaults_match_the_documented_contract():
    settings = Settings.from_env({})
    assert (settings.node_id, settings.bind_address, str(settings.data_dir)) == ("1", "127.0.0.1:8080", "count_data")
    assert (settings.memory_buffer_size, settings.flush_interval_seconds, settings.replication_factor) == (10000, 300, 2)
    assert settings.cluster_size == 1 and settings.log_level == "info"


def test_rust_log_is_an_alias_and_log_level_wins():
    assert Settings.from_env({"RUST_LOG": "count=debug,hyper=info"}).log_level == "debug"
    assert Settings.from_env({"RUST_LOG": "warn"}).log_level == "warning"
    assert Settings.from_env({"RUST_LOG": "debug", "LOG_LEVEL": "error"}).log_level == "error"


def test_pod_names_are_node_ids():
    assert Settings.from_env({"NODE_ID": "count-2"}).node_id_value == "count-2"
    assert Settings.from_env({"NODE_ID": "3"}).node_id_value == 3


@pytest.mark.parametrize("variable, value", [
    ("MEMORY_BUFFER_SIZE", "abc"), ("MEMORY_BUFFER_SIZE", "0"), ("FLUSH_INTERVAL_SECONDS", "-1"),
    ("BIND_ADDRESS", "8080"), ("BIND_ADDRESS", "host:99999"), ("CLUSTER_ENABLED", "maybe"),
    ("NODE_ID", "no spaces"), ("LOG_LEVEL", "loud"), ("WAL_FSYNC", "sometimes"), ("CLUSTER_NODES", "a:1,a:1"),
])
def test_a_bad_value_names_its_variable(variable, value):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({variable: value})
    assert raised.value.variable == variable


def test_replication_factor_cannot_exceed_the_cluster():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CLUSTER_ENABLED": "true", "CLUSTER_NODES": "a:8080,b:8080", "REPLICATION_FACTOR": "3"})
    assert raised.value.variable == "REPLICATION_FACTOR"
    with pytest.raises(ConfigError):
        Settings.from_env({"CLUSTER_ENABLED": "true"})


def test_every_variable_is_read_by_from_env():
    assert {"NODE_ID", "BIND_ADDRESS", "DATA_DIR", "MEMORY_BUFFER_SIZE", "FLUSH_INTERVAL_SECONDS", "LOG_LEVEL",
            "RUST_LOG", "CLUSTER_ENABLED", "CLUSTER_NODES", "REPLICATION_FACTOR"} <= set(ENVIRONMENT)


def _run(args, **env):
    return subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_countdb_config_prints_and_checks(tmp_path):
    ok = _run(["config"], DATA_DIR=str(tmp_path))
    assert ok.returncode == 0 and '"memory_buffer_size": 10000' in ok.stdout
    bad = _run(["config"], MEMORY_BUFFER_SIZE="lots")
    assert bad.returncode != 0 and "MEMORY_BUFFER_SIZE" in bad.stderr and "Traceback" not in bad.stderr


def test_server_refuses_to_start_on_bad_configuration_in_one_line():
    result = _run(["serve"], FLUSH_INTERVAL_SECONDS="soon")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "FLUSH_INTERVAL_SECONDS" in result.stderr


def test_cluster_mode_needs_a_secret():
    cluster = {"CLUSTER_ENABLED": "true", "CLUSTER_NODES": "a:8080,b:8080"}
    for secret in (None, "", "   "):
        env = cluster if secret is None else {**cluster, "CLUSTER_SECRET": secret}
        with pytest.raises(ConfigError) as raised:
            Settings.from_env(env)
        assert raised.value.variable == "CLUSTER_SECRET"
    assert Settings.from_env({**cluster, "CLUSTER_SECRET": "s3cret"}).cluster_secret == "s3cret"
    assert Settings.from_env({"CLUSTER_SECRET": ""}).cluster_secret == ""  # no cluster, no secret needed


def test_cluster_without_a_secret_stops_start_up_in_one_line():
    result = _run(["serve"], CLUSTER_ENABLED="true", CLUSTER_NODES="a:8080,b:8080", CLUSTER_SECRET="")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "CLUSTER_SECRET" in result.stderr


def _cgroup_tree(root, own: str, limits: dict[str, str]):
    for folder, cpu_max in limits.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "cpu.max").write_text(cpu_max + "\n")
    own_cgroup = root.parent / "self-cgroup"
    own_cgroup.write_text(f"4:memory:/ignored\n0::{own}\n")
    return {"cgroup_root": root, "own_cgroup": own_cgroup}


@pytest.mark.parametrize("own, limits, expected", [
    ("/pod/count", {"pod": "400000 100000", "pod/count": "50000 100000"}, 1),  # 0.5 CPU rounds up to 1
    ("/pod/count", {"pod": "100000 100000", "pod/count": "max 100000"}, 1),  # a parent's quota applies too
    ("/", {".": "100000 100000"}, 1),  # inside a cgroup namespace: the container's own cpu.max at the root
    ("/not/mounted/here", {".": "100000 100000"}, 1),  # the host's path, not visible in the container
    ("/pod/count", {"pod": "max 100000", "pod/count": "max 100000"}, None),  # no quota: the affinity
])
def test_usable_cpus_follow_the_cgroup_v2_quota(tmp_path, own, limits, expected):
    affinity = len(os.sched_getaffinity(0))
    found = usable_cpu_count(**_cgroup_tree(tmp_path / "cgroup", own, limits))
    assert found == (affinity if expected is None else min(expected, affinity))


def test_cgroup_v1_only_means_the_affinity_alone(tmp_path):
    own_cgroup = tmp_path / "self-cgroup"
    own_cgroup.write_text("4:cpu,cpuacct:/docker/abc\n")
    assert usable_cpu_count(tmp_path, own_cgroup) == len(os.sched_getaffinity(0))


def test_default_workers_follow_the_cpu_affinity_not_the_host():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from countdb.config import Settings, usable_cpu_count; print(usable_cpu_count(), Settings().workers)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == ["1", "2"]  # one usable CPU; at least 2 workers all the same


STATEFUL_NODES = ("count-0.count-headless.count.svc.cluster.local:8080,"
                  "count-1.count-headless.count.svc.cluster.local:8080,count-2.count-headless.count.svc.cluster.local:8080")


@pytest.mark.parametrize("node_id, nodes, index", [
    ("1", "a:8080,b:8080,c:8080", 0), ("3", "a:8080,b:8080,c:8080", 2), ("count-2", STATEFUL_NODES, 2),
    ("count-0", STATEFUL_NODES, 0), ("node-b", "node-a:8080,node-b:8080", 1),
])
def test_node_id_is_a_position_or_the_host_its_entry_starts_with(node_id, nodes, index):
    env = {"CLUSTER_ENABLED": "true", "CLUSTER_NODES": nodes, "CLUSTER_SECRET": "s", "NODE_ID": node_id,
           "REPLICATION_FACTOR": "2"}
    assert Settings.from_env(env).node_index == index


@pytest.mark.parametrize("node_id, nodes", [("4", "a:1,b:1,c:1"), ("0", "a:1,b:1"), ("count-3", STATEFUL_NODES),
                                            ("count", STATEFUL_NODES)])
def test_a_node_not_in_the_list_refuses_to_start(node_id, nodes):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CLUSTER_ENABLED": "true", "CLUSTER_NODES": nodes, "CLUSTER_SECRET": "s",
                           "NODE_ID": node_id, "REPLICATION_FACTOR": "1"})
    assert raised.value.variable == "NODE_ID"


def test_cluster_timing_and_consistency_are_checked():
    cluster = {"CLUSTER_ENABLED": "true", "CLUSTER_NODES": "a:1,b:1,c:1", "CLUSTER_SECRET": "s"}
    settings = Settings.from_env({**cluster, "WRITE_CONSISTENCY": "ALL", "HEARTBEAT_INTERVAL": "0.5",
                                  "FAILURE_TIMEOUT": "2"})
    assert (settings.write_consistency, settings.heartbeat_interval_seconds, settings.failure_timeout_seconds) == (
        "all", 0.5, 2.0)
    for bad in ({"WRITE_CONSISTENCY": "most"}, {"HEARTBEAT_INTERVAL": "10", "FAILURE_TIMEOUT": "5"}):
        with pytest.raises(ConfigError):
            Settings.from_env({**cluster, **bad})
