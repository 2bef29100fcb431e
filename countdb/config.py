"""Settings from the environment. This is the only module that reads os.environ.

Invariant: a Settings object is always valid; anything wrong raises ConfigError naming the variable.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

from countdb.datadir import DataDir
from countdb.errors import ConfigError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_RUST_LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning", "error": "error", "off": "critical"}


@dataclass(frozen=True)
class Settings:
    """Everything a Count node is told at start-up. Units are in the names."""

    node_id: str = "1"
    bind_host: str = "127.0.0.1"
    bind_port: int = 8080
    data_dir: Path = Path("./count_data")
    memory_buffer_size: int = 10_000
    flush_interval_seconds: float = 300.0
    log_level: str = "info"
    cluster_enabled: bool = False
    cluster_nodes: tuple[str, ...] = ()
    replication_factor: int = 2
    cluster_secret: str = ""
    heartbeat_interval_seconds: float = 5.0
    failure_timeout_seconds: float = 30.0
    write_consistency: str = "quorum"
    forward_timeout_seconds: float = 10.0
    anti_entropy_interval_seconds: float = 30.0
    workers: int = field(default_factory=lambda: max(2, usable_cpu_count()))
    threads: int = 4
    wal_fsync: str = "interval"
    wal_fsync_interval_ms: int = 1000
    wal_replay: str = "repair"
    max_body_bytes: int = 16 * 1024 * 1024
    max_points_per_request: int = 1_000_000
    query_timeout_seconds: float = 30.0
    query_memory_limit_mb: int = 1024
    query_max_rows: int = 10_000_000
    query_max_series: int = 10_000
    shutdown_grace_seconds: float = 20.0
    flight_port: int = 8815
    retention_days: int = 0
    compaction_interval_seconds: float = 30.0
    metrics_dir: Path | None = None  # None: DATA_DIR/node_state/metrics
    auth_required: bool = False
    metrics_auth: bool = True  # with auth_required: /metrics needs a read token too
    auth_cache_seconds: float = 5.0
    min_free_disk_mb: int = 100
    client_timeout_seconds: float = 10.0

    @property
    def bind_address(self) -> str:
        host = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{host}:{self.bind_port}"

    @property
    def retired_block_grace_seconds(self) -> float:
        """How long a block file replaced by compaction stays on disk: twice the longest a query may run."""
        return 2 * self.query_timeout_seconds

    @property
    def cluster_size(self) -> int:
        """Nodes configured (1 when not clustered); /health reports the members currently up instead."""
        return len(self.cluster_nodes) if self.cluster_enabled else 1

    @property
    def node_index(self) -> int:
        """This node's 0-based position in CLUSTER_NODES (0 when not clustered); see resolve_node_index."""
        return resolve_node_index(self.node_id, self.cluster_nodes) if self.cluster_enabled else 0

    @property
    def node_id_value(self) -> int | str:
        """NODE_ID as /health reports it: an int when it is one, else the name (a pod name)."""
        return int(self.node_id) if self.node_id.isdigit() else self.node_id

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read and validate every variable in ENVIRONMENT; raises ConfigError on the first bad one."""
        env = os.environ if environ is None else environ
        values = {}
        for variable, (attribute, parse) in ENVIRONMENT.items():
            raw = env.get(variable)
            if raw is None or (raw.strip() == "" and variable != "CLUSTER_NODES"):
                continue
            try:
                parsed = parse(raw.strip())
            except (ValueError, TypeError) as error:
                raise ConfigError(variable, f"{error} (got {raw!r})") from None
            if attribute == "log_level" and "log_level" in values:
                continue  # LOG_LEVEL wins over its alias RUST_LOG
            if attribute == "bind_address":
                values["bind_host"], values["bind_port"] = parsed
            else:
                values[attribute] = parsed
        settings = cls(**values)
        settings.check()
        return settings

    @classmethod
    def for_tests(cls, data_dir: Path, **overrides) -> "Settings":
        """Tiny thresholds so flushes happen inside a test."""
        base = dict(data_dir=Path(data_dir), memory_buffer_size=50, flush_interval_seconds=2.0,
                    workers=2, threads=2, wal_fsync_interval_ms=50, shutdown_grace_seconds=10.0)
        base.update(overrides)
        settings = cls(**base)
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-variable rules; single values are checked by their parsers."""
        if self.cluster_enabled and not self.cluster_nodes:
            raise ConfigError("CLUSTER_NODES", "must list the nodes (host:port,…) when CLUSTER_ENABLED is true")
        if self.cluster_enabled and self.replication_factor > len(self.cluster_nodes):
            raise ConfigError("REPLICATION_FACTOR",
                              f"{self.replication_factor} is more than the {len(self.cluster_nodes)} nodes in CLUSTER_NODES")
        if self.cluster_enabled and not self.cluster_secret:
            raise ConfigError("CLUSTER_SECRET", "must be set (a long random string shared by the nodes) "
                                                "when CLUSTER_ENABLED is true")
        if self.cluster_enabled:
            resolve_node_index(self.node_id, self.cluster_nodes)
        if self.failure_timeout_seconds <= self.heartbeat_interval_seconds:
            raise ConfigError("FAILURE_TIMEOUT", f"{self.failure_timeout_seconds:g} s must be longer than "
                                                 f"HEARTBEAT_INTERVAL ({self.heartbeat_interval_seconds:g} s)")

    def describe(self) -> dict:
        """The effective configuration, printable (the secret is masked)."""
        shown = asdict(self)
        shown["data_dir"] = str(self.data_dir)
        shown["cluster_nodes"] = list(self.cluster_nodes)
        shown["cluster_secret"] = "***" if self.cluster_secret else ""
        shown["metrics_dir"] = str(self.metrics_dir or DataDir(self.data_dir).metrics)
        shown["bind_address"] = self.bind_address
        return shown


def resolve_node_index(node_id: str, cluster_nodes: tuple[str, ...]) -> int:
    """Which CLUSTER_NODES entry is this node (0-based): NODE_ID N (an integer) is the N-th entry, 1-based, as
    in the deployment guide's Compose files; a name such as a StatefulSet pod's `count-2` is the one entry whose
    host is that name or starts with `name.` (`count-2.count-headless.…:8080`). ConfigError otherwise."""
    if node_id.isdigit():
        number = int(node_id)
        if not 1 <= number <= len(cluster_nodes):
            raise ConfigError("NODE_ID", f"{number} is not a position in CLUSTER_NODES (1 to {len(cluster_nodes)})")
        return number - 1
    hosts = [entry.rpartition(":")[0].strip("[]") for entry in cluster_nodes]
    matches = [i for i, host in enumerate(hosts) if host == node_id or host.startswith(node_id + ".")]
    if len(matches) != 1:
        found = "no entry" if not matches else f"{len(matches)} entries"
        raise ConfigError("NODE_ID", f"{node_id!r} matches {found} of CLUSTER_NODES; it must be this node's "
                                     "position (1-based) or the host name its entry starts with")
    return matches[0]


def usable_cpu_count(cgroup_root: Path = Path("/sys/fs/cgroup"),
                     own_cgroup: Path = Path("/proc/self/cgroup")) -> int:
    """CPUs this process may actually use: its CPU affinity, capped by the cgroup v2 `cpu.max` quota (rounded
    up) of its cgroup or any parent. os.cpu_count() counts the host's CPUs, too many in a container."""
    affinity = getattr(os, "sched_getaffinity", None)
    count = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    quota = _cgroup_cpu_quota(cgroup_root, own_cgroup)
    return max(1, min(count, quota) if quota else count)


def _cgroup_cpu_quota(cgroup_root: Path, own_cgroup: Path) -> int | None:
    """The smallest `cpu.max` quota from this process's cgroup up to the root, in whole CPUs; None if none."""
    try:
        lines = own_cgroup.read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None  # cgroup v1 only: not read
    folder, quotas = cgroup_root / relative.lstrip("/"), []
    # NOTE: inside a container's cgroup namespace the path may be "/" or may not exist under the mount; walking
    # up to cgroup_root itself covers both, since that is where the container's own limit is then shown.
    while True:
        try:
            quota, period = (folder / "cpu.max").read_text().split()
            if quota != "max":
                quotas.append(math.ceil(int(quota) / int(period)))
        except (OSError, ValueError):
            pass
        if folder == cgroup_root or cgroup_root not in folder.parents:
            return min(quotas, default=None)
        folder = folder.parent


def _positive_int(text: str) -> int:
    if not text.isdigit():
        raise ValueError("must be a whole number")
    value = int(text)
    if value < 1:
        raise ValueError("must be a whole number of at least 1")
    return value


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise ValueError("must be a whole number (0 or more)")
    return int(text)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be 0 or a positive number")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _node_id(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}", text):
        raise ValueError("must be an integer or a name such as count-2 (letters, digits, . _ -)")
    return text


def _bind_address(text: str) -> tuple[str, int]:
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\s]+):(\d+)", text)
    if match is None:
        raise ValueError("must be host:port, e.g. 0.0.0.0:8080")
    host, port = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    if not 0 <= int(port) <= 65535:
        raise ValueError("port must be between 0 and 65535")
    return host, int(port)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ValueError("must be a port number between 0 and 65535 (0 turns it off)")
    return int(text)


def _data_dir(text: str) -> Path:
    return Path(text)


def _log_level(text: str) -> str:
    lowered = text.lower()
    if lowered in LOG_LEVELS:
        return lowered
    if lowered in _RUST_LEVELS:
        return _RUST_LEVELS[lowered]
    # RUST_LOG directives such as "count=debug,hyper=info": take the first level named.
    for directive in lowered.split(","):
        level = directive.rpartition("=")[2]
        if level in _RUST_LEVELS:
            return _RUST_LEVELS[level]
    raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")


def _cluster_nodes(text: str) -> tuple[str, ...]:
    nodes = tuple(node.strip() for node in text.split(",") if node.strip())
    for node in nodes:
        _bind_address(node)
    if len(set(nodes)) != len(nodes):
        raise ValueError("lists a node twice")
    return nodes


def _choice(*options: str):
    def parse(text: str) -> str:
        if text.lower() not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text.lower()
    return parse


ENVIRONMENT = {
    "NODE_ID": ("node_id", _node_id),
    "BIND_ADDRESS": ("bind_address", _bind_address),
    "DATA_DIR": ("data_dir", _data_dir),
    "MEMORY_BUFFER_SIZE": ("memory_buffer_size", _positive_int),
    "FLUSH_INTERVAL_SECONDS": ("flush_interval_seconds", _positive_float),
    "LOG_LEVEL": ("log_level", _log_level),
    "RUST_LOG": ("log_level", _log_level),
    "CLUSTER_ENABLED": ("cluster_enabled", _boolean),
    "CLUSTER_NODES": ("cluster_nodes", _cluster_nodes),
    "REPLICATION_FACTOR": ("replication_factor", _positive_int),
    "CLUSTER_SECRET": ("cluster_secret", str),
    "HEARTBEAT_INTERVAL": ("heartbeat_interval_seconds", _positive_float),
    "FAILURE_TIMEOUT": ("failure_timeout_seconds", _positive_float),
    "WRITE_CONSISTENCY": ("write_consistency", _choice("one", "quorum", "all")),
    "FORWARD_TIMEOUT_SECONDS": ("forward_timeout_seconds", _positive_float),
    "ANTI_ENTROPY_INTERVAL_SECONDS": ("anti_entropy_interval_seconds", _positive_float),
    "WORKERS": ("workers", _positive_int),
    "THREADS": ("threads", _positive_int),
    "WAL_FSYNC": ("wal_fsync", _choice("interval", "always")),
    "WAL_FSYNC_INTERVAL_MS": ("wal_fsync_interval_ms", _positive_int),
    "WAL_REPLAY": ("wal_replay", _choice("repair", "strict")),
    "MAX_BODY_BYTES": ("max_body_bytes", _positive_int),
    "MAX_POINTS_PER_REQUEST": ("max_points_per_request", _positive_int),
    "QUERY_TIMEOUT_SECONDS": ("query_timeout_seconds", _positive_float),
    "QUERY_MEMORY_LIMIT_MB": ("query_memory_limit_mb", _positive_int),
    "QUERY_MAX_ROWS": ("query_max_rows", _positive_int),
    "QUERY_MAX_SERIES": ("query_max_series", _positive_int),
    "SHUTDOWN_GRACE_SECONDS": ("shutdown_grace_seconds", _positive_float),
    "FLIGHT_PORT": ("flight_port", _port),
    "RETENTION_DAYS": ("retention_days", _non_negative_int),
    "COMPACTION_INTERVAL_SECONDS": ("compaction_interval_seconds", _non_negative_float),
    "PROMETHEUS_MULTIPROC_DIR": ("metrics_dir", _data_dir),
    "AUTH_REQUIRED": ("auth_required", _boolean),
    "METRICS_AUTH": ("metrics_auth", _boolean),
    "AUTH_CACHE_SECONDS": ("auth_cache_seconds", _non_negative_float),
    "MIN_FREE_DISK_MB": ("min_free_disk_mb", _non_negative_int),
    "CLIENT_TIMEOUT_SECONDS": ("client_timeout_seconds", _positive_float),
}
"""Every environment variable Count reads, mapped to its Settings attribute and parser."""
