"""Count's Prometheus metrics (prometheus-client), defined once here so that every layer can update them.

Invariant: under gunicorn, PROMETHEUS_MULTIPROC_DIR is set before this module is first imported
(countdb/obs/multiprocess.py), so each process writes its samples to its own files there and exposition()
adds up every worker's; without it (unit tests) the metrics live in this process alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Protocol

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.process_collector import ProcessCollector

# NOTE: the classic text format that generate_latest() writes, named as every Prometheus 2.x server expects;
# newer clients label it version=1.0.0, which only matters for UTF-8 metric names, and Count has none.
EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

HTTP_REQUESTS = Counter("count_http_requests", "HTTP requests answered, by route template, method and status code",
                        ["route", "method", "status"])
HTTP_REQUEST_SECONDS = Histogram("count_http_request_duration_seconds",
                                 "Time from request to response in the application, by route template",
                                 ["route"], buckets=LATENCY_BUCKETS_SECONDS)
POINTS_INGESTED = Counter("count_points_ingested", "Points acknowledged, by write protocol or /insert format",
                          ["protocol"])
POINTS_REJECTED = Counter("count_points_rejected",
                          "Points refused: invalid (malformed line, sample or label set), invalid_batch (valid points "
                          "refused with a batch that had invalid ones), non_finite (NaN or infinite value), "
                          "unavailable (node shutting down or flushes behind), storage (disk full or WAL append "
                          "failed)", ["reason"])
BUFFERED_POINTS = Gauge("count_buffered_points", "Points acknowledged but not yet flushed to Parquet, all workers",
                        multiprocess_mode="livesum")
FLUSHES = Counter("count_flushes", "Flushes of buffered points to Parquet blocks, by outcome", ["outcome"])
FLUSH_SECONDS = Histogram("count_flush_duration_seconds", "Duration of successful flushes",
                          buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0))
FLUSHED_POINTS = Counter("count_flushed_points", "Points published in Parquet blocks by flushes")
QUERY_SECONDS = Histogram("count_query_duration_seconds", "Time to answer a query (snapshot and DuckDB), by kind",
                          ["kind"], buckets=LATENCY_BUCKETS_SECONDS)
CLUSTER_FORWARDED_POINTS = Counter("count_cluster_forwarded_points",
                                   "Points this node sent to other nodes as their owner's copy")
CLUSTER_FORWARD_SECONDS = Histogram("count_cluster_forward_duration_seconds",
                                    "Time of one request forwarding writes to another node (copies, several at once "
                                    "when they overlap, or a hint)",
                                    buckets=LATENCY_BUCKETS_SECONDS)
CLUSTER_HINTS_STORED = Counter("count_cluster_hints_stored", "Hints kept (here or on a stand-in) for owners that were down")
CLUSTER_HINTS_DELIVERED = Counter("count_cluster_hints_delivered", "Hints delivered to their node once it was back")
CLUSTER_HINTS_PENDING = Gauge("count_cluster_hints_pending", "Hints this node holds for other nodes, by target node",
                              ["target"], multiprocess_mode="mostrecent")
CLUSTER_MEMBERS_UP = Gauge("count_cluster_members_up", "Cluster nodes up as this node sees them, itself included",
                           multiprocess_mode="mostrecent")
CLUSTER_SEGMENTS_PUSHED = Counter("count_cluster_segments_pushed", "Parquet segments pushed to peers by anti-entropy")
CLUSTER_SEGMENT_BYTES = Counter("count_cluster_segment_bytes", "Bytes of the Parquet segments pushed to peers")
CLUSTER_SQL_STATEMENTS = Counter("count_cluster_sql_statements",
                                 "SQL statements run in a cluster, by plan: split (each node answered for its series) "
                                 "or points (the other nodes' points were read here)", ["plan"])
CLUSTER_POINTS_REPAIRED = Counter("count_cluster_points_repaired", "Points anti-entropy pushed to peers that lacked them")


def reject_points(reason: str, points: int) -> None:
    if points:
        POINTS_REJECTED.labels(reason).inc(points)


def observe_flush(seconds: float, points: int) -> None:
    FLUSHES.labels("ok").inc()
    FLUSH_SECONDS.observe(seconds)
    FLUSHED_POINTS.inc(points)


class Collector(Protocol):
    def collect(self) -> Iterable[Metric]: ...


def exposition(collectors: Iterable[Collector] = ()) -> bytes:
    """Every metric of the node in Prometheus text format, plus those of `collectors` (read at scrape time)."""
    # NOTE: prometheus-client's own variable, read as it reads it: it decides where the samples are.
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        sources = [multiprocess.MultiProcessCollector(None, folder), NodeProcessCollector(os.getppid())]
    else:
        sources = [REGISTRY]
    return generate_latest(_Together([*sources, *collectors]))


def node_totals(*families: str) -> dict[str, int]:
    """Counters of the node, each summed over its labels and every worker, as /metrics reports `<family>_total`;
    every worker's metric files are read once for all of them."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    source = multiprocess.MultiProcessCollector(None, folder) if folder else REGISTRY
    totals = dict.fromkeys(families, 0.0)
    for metric in source.collect():
        if metric.name in totals:
            totals[metric.name] += sum(s.value for s in metric.samples if s.name == f"{metric.name}_total")
    return {family: int(total) for family, total in totals.items()}


class _Together:
    def __init__(self, collectors: list[Collector]):
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


HELPER_ROLES = {"countdb.flight": "flight", "countdb.ingest.compaction_process": "compactor",
                "countdb.cluster": "cluster_agent"}
"""The `role` of each helper process the master starts (`python -m <module>`) beside its workers."""


class NodeProcessCollector:
    """The standard process_* metrics of the gunicorn master and of each of its children, labelled `pid` and
    `role` (master, worker, or a helper's role: HELPER_ROLES). In multiprocess mode the client's ProcessCollector
    would describe only the worker answering the scrape."""

    def __init__(self, master_pid: int):
        self.master_pid = master_pid

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        processes = [(self.master_pid, "master")] + [(pid, process_role(pid)) for pid in _children(self.master_pid)]
        for pid, role in processes:
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "role": role, "pid": str(pid)}, sample.value)
        return families.values()


def process_role(pid: int) -> str:
    """A child of the master: the role of the helper module it runs, else (a gunicorn worker) "worker"."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return "worker"
    module = arguments[arguments.index("-m") + 1] if "-m" in arguments[:-1] else ""
    return HELPER_ROLES.get(module, "worker")


def _children(pid: int) -> list[int]:
    """The master's children (workers, helper processes; Linux's children list); this process alone if unreadable."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return [os.getpid()]
