"""The benchmark, end to end: ingest every protocol, flush, query against a DuckDB baseline, load-test, report.

Invariant: one failing phase never hides the others: its error is recorded in results["errors"], the remaining
phases still run, the JSON/Markdown/PNG are still written, and the exit status is 1.
Usage: python -m bench --scale small   (bench/run wraps it with the venv and wrk)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from bench import charts, ingest, markdown, queries, report, spread, storage, transfer
from bench.dataset import EXPORTER_DATA, SCALES, VALUE_SHAPES, CpuDataset, Scale, load_exporter_points
from bench.machine import describe_machine
from bench.server import CountServer, RssSampler, free_port
from bench.wire import prometheus_encoder_name
from bench.wrk import run_wrk, wrk_available
from countdb.config import Settings
from countdb.ingest.settled import SETTLE_MARGIN_NS

REPO = Path(__file__).resolve().parent.parent
QUERY_LOAD_CONNECTIONS = 8
BACKGROUND_COMPACTION_SECONDS = str(Settings.from_env({}).compaction_interval_seconds)  # the node's default
MEMORY_GUARD_SHARE = 0.7  # of MemTotal the workers may hold together before the server is killed
# NOTE: the size of a Telegraf batch (1,000 metrics of a few fields) or a Prometheus remote-write request; each
# request is one write stamp, so the size sets what the stored stamps (`seq`) cost.
SHAPE_REQUEST_POINTS = 5_000
PHASES = ("ingest", "queries", "single_insert", "exporter", "value_shapes", "transfer")


class Run:
    """One benchmark run's state: where data lives, and the results dict being filled phase by phase."""

    def __init__(self, scale: Scale, work_dir: Path, clients: int, use_wrk: bool, seed: int):
        self.scale, self.work_dir, self.clients, self.use_wrk = scale, work_dir, clients, use_wrk
        self.dataset = CpuDataset(scale, seed)
        self.results: dict = {"schema": 1, "scale": scale.name, "errors": [], "problems": []}

    def phase(self, name: str, action) -> None:
        """Run one phase; an exception is recorded (with the traceback) instead of ending the run."""
        began = time.monotonic()
        print(f"[bench] {name} …", flush=True)
        try:
            action()
        except Exception as error:  # noqa: BLE001 - the point is to record any failure and go on
            self.results["errors"].append({"phase": name, "error": f"{type(error).__name__}: {error}",
                                           "traceback": traceback.format_exc()})
            print(f"[bench] {name} FAILED: {error}", file=sys.stderr, flush=True)
        self.results.setdefault("phase_seconds", {})[name] = round(time.monotonic() - began, 2)

    def server(self, name: str, **env: str) -> CountServer:
        # NOTE: no background compaction, so storage is measured as flushed, then after `countdb compact`.
        return CountServer(self.work_dir / name, self.work_dir / f"{name}.log",
                           {"COMPACTION_INTERVAL_SECONDS": "0", **env})

    def ingest_phase(self) -> None:
        """Every protocol writes its own time slice of the data set (RSS sampled throughout), then SIGTERM flushes."""
        server = self.server("cpu").start()
        slices = ingest.time_slices(self.scale.points_per_series)
        result = self.results["ingest"] = {"clients": self.clients, "protocols": {}, "backfill": [],
                                           "prometheus_encoder": prometheus_encoder_name()}
        try:
            with RssSampler(server, limit_mb=_memory_mb() * MEMORY_GUARD_SHARE) as sampler:
                for protocol in ingest.PROTOCOLS:
                    if sampler.exceeded:
                        break
                    t0, t1 = slices[protocol.name]
                    measured = ingest.measure_protocol(server.url, protocol, self.dataset, t0, t1,
                                                       self.scale.repeats, self.clients)
                    result["protocols"][protocol.name] = measured
                    print(f"[bench]   {protocol.name}: {_brief(measured)}", flush=True)
                if not sampler.exceeded:
                    result["backfill"] = self._backfill(server.url, slices, result["protocols"])
                result["server_workers"] = len(server.worker_pids())
            self.results["rss"] = {"worker_peak_mb": {str(pid): round(mb, 1) for pid, mb in sampler.peak_mb.items()},
                                   "max_worker_peak_mb": round(max(sampler.peak_mb.values(), default=0.0), 1)}
            _check_guard(sampler)
        finally:
            self._flush_on_sigterm(server, result)
        result["points_written"] = (sum(r["points"] for r in result["protocols"].values() if r.get("available"))
                                    + sum(entry["points"] for entry in result["backfill"]))
        self.results["storage"] = {"cpu": storage.storage_result(server.data_dir, self.dataset.points(),
                                                                 result["points_written"])}

    def _flush_on_sigterm(self, server: CountServer, result: dict) -> None:
        """SIGTERM (the server flushes everything to Parquet) while the workers' memory is sampled; sync the disk."""
        with RssSampler(server, limit_mb=_memory_mb() * MEMORY_GUARD_SHARE) as sampler:
            result["shutdown"] = server.stop()
        self.results.setdefault("rss", {})["shutdown_flush_max_mb"] = {
            str(pid): round(mb, 1) for pid, mb in sampler.resident_max_mb.items()}
        os.sync()  # NOTE: write the ingest's dirty pages back now, not while queries are being timed
        _check_guard(sampler)

    def _backfill(self, url: str, slices: dict, out: dict) -> list:
        """Write, untimed, every time step a protocol did not (missing or failing endpoint)."""
        done = []
        for name, (t0, t1) in slices.items():
            written_to = out[name].get("written_steps", (t0, t0))[1]
            if written_to < t1:
                done.append({"for": name, **ingest.write_untimed(url, self.dataset.points(written_to, t1),
                                                                 self.clients)})
        return done

    def queries_phase(self) -> None:
        """The queries three times over the ingest's blocks (issue 17): right after a restart on them as flushed,
        again the scale's catch_up_seconds (2 minutes) after that restart with the background compactor running,
        and after `countdb compact` (the stage the other targets judge; its storage figures are taken on the way).
        Each time: every sampled question to Count, then the wrk load; in the compacted stage each question also
        goes to plain DuckDB in turn (before, the compactor replaces files under DuckDB's file list)."""
        sampled = queries.sample_queries(self.dataset, self.scale.query_samples)
        stages = self.results["query_stages"] = {}
        with self.server("cpu", COMPACTION_INTERVAL_SECONDS=BACKGROUND_COMPACTION_SECONDS) as server:
            restarted = time.monotonic()
            stages["after_ingest"] = self._query_stage(server, sampled, restarted, against_duckdb=False)
            time.sleep(max(0.0, restarted + self.scale.catch_up_seconds - time.monotonic()))
            stages["after_2_minutes"] = self._query_stage(server, sampled, restarted, against_duckdb=False)
        self.results["storage"]["cpu_compacted"] = storage.compacted_result(
            server.data_dir, self.dataset.points(), self.results["ingest"]["points_written"],
            self.results["storage"]["cpu"])
        with self.server("cpu") as server:
            stages["compacted"] = self._query_stage(server, sampled, time.monotonic(), against_duckdb=True)
        self.results["queries"] = stages["compacted"]["queries"]
        if self.use_wrk:
            self.results["query_load"] = stages["compacted"]["query_load"]
        self.results["query_catch_up"] = queries.catch_up_ratios(stages)

    def _query_stage(self, server: CountServer, sampled: dict, restarted: float, against_duckdb: bool) -> dict:
        began = time.monotonic()
        stage: dict = {"began_s_after_restart": round(began - restarted, 1), "queries": {}}
        client = queries.CountClient(server.url)
        baseline = queries.DuckBaseline(server.data_dir) if against_duckdb else None
        try:
            for kind, batch in sampled.items():
                stage["queries"][kind] = queries.measure_kind(client, baseline, batch)
        finally:
            if baseline is not None:
                baseline.close()
        if self.use_wrk:
            stage["query_load"] = self._query_load(server.url)
        stage["block_files"] = sum(1 for _ in (server.data_dir / "time_blocks").rglob("*.parquet"))
        stage["seconds"] = round(time.monotonic() - began, 1)
        return stage

    def _query_load(self, url: str) -> dict:
        paths = self.work_dir / "range-paths.txt"
        paths.write_text("\n".join(queries.load_paths(self.dataset)) + "\n")
        runs = [run_wrk(url, "range.lua", [str(paths)], QUERY_LOAD_CONNECTIONS, self.scale.wrk_seconds)
                for _ in range(self.scale.repeats)]
        return _wrk_summary(runs, QUERY_LOAD_CONNECTIONS, expected_status=200)

    def single_insert_phase(self) -> None:
        """Single-point inserts, each run against a node started a moment before (issue 17), beside the trivial
        Falcon + gunicorn app."""
        if not self.use_wrk:
            return
        self.results["single_insert"] = spread.measure_spread(
            lambda n: self.server(f"single-{n}"), self.work_dir, self.scale.fresh_starts, self.scale.wrk_seconds,
            self.dataset.end_ms + 86_400_000)

    def transfer_phase(self) -> None:
        """Restart on the flushed DATA_DIR with Arrow Flight on; every stored point to a pyarrow client."""
        out = self.results["transfer"] = transfer.not_measured("the transfer phase failed (see Problems)")
        flight_port = free_port()
        with self.server("cpu", FLIGHT_PORT=str(flight_port)) as server:
            out.update(transfer.measure_transfer(server, flight_port, self.scale.repeats))

    def value_shapes_phase(self) -> None:
        """The cpu data set's series and times with each of VALUE_SHAPES' values (issue 17), each into a node of
        its own in Arrow requests of SHAPE_REQUEST_POINTS: bytes/point as flushed (SIGTERM); then, once the
        writes are SETTLE_MARGIN_NS old (at most the scale's catch_up_seconds), after `countdb compact`, which
        then stores one stamp for them all as the background compactor does with rows that old."""
        stored = self.results.setdefault("storage", {})
        nodes = {}
        for shape in VALUE_SHAPES:
            points = self.dataset.points(shape=shape)
            server = self.server(f"shape-{shape}").start()
            try:
                written = ingest.write_arrow(server.url, points, self.clients, SHAPE_REQUEST_POINTS)
            finally:
                shutdown = server.stop()
            stored[shape] = {**storage.storage_result(server.data_dir, points, written["points"]),
                             "written": written, "shutdown": shutdown}
            nodes[shape] = (server.data_dir, written["points"])
        written_at = time.monotonic()
        time.sleep(min(SETTLE_MARGIN_NS / 1e9 + 1, self.scale.catch_up_seconds))
        for shape, (data_dir, written) in nodes.items():
            compacted = storage.compacted_result(data_dir, self.dataset.points(shape=shape), written, stored[shape])
            stored[f"{shape}_compacted"] = {**compacted,
                                            "seconds_after_writes": round(time.monotonic() - written_at, 1)}
            print(f"[bench]   {shape}: {stored[shape]['bytes_per_point']} B/point as flushed, "
                  f"{compacted['bytes_per_point']} compacted", flush=True)
            shutil.rmtree(data_dir, ignore_errors=True)

    def exporter_phase(self) -> None:
        """The shipped node-exporter recording: write, SIGTERM (flush), bytes/point, then the same after compaction."""
        points = load_exporter_points(EXPORTER_DATA)
        server = self.server("exporter").start()
        try:
            written = ingest.write_untimed(server.url, points, self.clients)
        finally:
            shutdown = server.stop()
        result = storage.storage_result(server.data_dir, points, written["points"])
        stored = self.results.setdefault("storage", {})
        stored["exporter"] = {**result, "written": written, "shutdown": shutdown,
                              "source": str(EXPORTER_DATA.relative_to(REPO))}
        stored["exporter_compacted"] = storage.compacted_result(server.data_dir, points, written["points"], result)


def _check_guard(sampler: RssSampler) -> None:
    if sampler.exceeded:
        raise MemoryError(f"the workers reached {sampler.exceeded:,.0f} MB together, over "
                          f"{MEMORY_GUARD_SHARE:.0%} of the machine's memory: the server was killed to keep the OOM "
                          "killer away")


def _memory_mb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024
    return float("inf")


def _wrk_summary(runs: list[dict], connections: int, expected_status: int) -> dict:
    """Median across runs of req/s (all answers, and only the expected ones: the figure targets use) and of
    each run's p50/p99; the worst run's p99; every unexpected answer."""
    def median(key):
        return round(statistics.median(run["latency_ms"][key] for run in runs), 3)
    return {
        "available": True, "connections": connections, "expected_status": expected_status, "runs": runs,
        "requests_per_s_median": round(statistics.median(run["requests_per_s"] for run in runs), 1),
        "expected_per_s_median": round(statistics.median(run["expected_per_s"] for run in runs), 1),
        "latency_ms_p50": median("p50"), "latency_ms_p99": median("p99"),
        "latency_ms_p99_worst": max(run["latency_ms"]["p99"] for run in runs),
        "unexpected_status": sum(run["unexpected_status"] for run in runs),
        "socket_errors": sum(sum(run["socket_errors"].values()) - run["socket_errors"]["status"] for run in runs),
        "requests": sum(run["requests"] for run in runs),
    }


def _brief(result: dict) -> str:
    if not result.get("available"):
        return f"{result.get('reason')} ({result.get('probe_status')})"
    return f"{result['points']:,} points, median {result['points_per_s_median']:,.0f} points/s"


def run_benchmark(scale: Scale, results_dir: Path, work_dir: Path | None = None, clients: int = 4,
                  use_wrk: bool = True, seed: int = 42, keep_data: bool = False,
                  phases: tuple[str, ...] = PHASES) -> tuple[dict, dict]:
    """Run `phases` (every phase by default; the queries need the ingest's data) and write the reports; returns
    (results, paths of the files written)."""
    started = datetime.now(timezone.utc)
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"count-bench-{scale.name}-"))
    work.mkdir(parents=True, exist_ok=True)
    run = Run(scale, work, clients, use_wrk and wrk_available(), seed)
    run.results.update(started_at=started.isoformat(timespec="seconds"), machine=describe_machine(REPO),
                       dataset=_describe_dataset(run.dataset), work_dir=str(work))
    if not run.use_wrk:
        reason = "wrk not installed" if use_wrk else "disabled (--no-wrk)"
        for key in ("query_load", "single_insert"):
            run.results[key] = {"available": False, "reason": reason}
    try:
        for name in phases:
            run.phase(name, getattr(run, f"{name}_phase"))
    finally:
        if not keep_data:
            shutil.rmtree(work, ignore_errors=True)
    run.results["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    run.results["targets"] = report.evaluate_targets(run.results)
    run.results["problems"] += report.find_problems(run.results)
    return run.results, write_outputs(run.results, results_dir, started)


def _describe_dataset(dataset: CpuDataset) -> dict:
    scale = dataset.scale
    return {"kind": "cpu-only (TSBS-like)", "hosts": scale.hosts, "series": scale.series,
            "points_per_series": scale.points_per_series, "points": scale.points, "interval_ms": 10_000,
            "start_ms": dataset.start_ms, "end_ms": dataset.end_ms, "seed": dataset.seed}


def write_outputs(results: dict, results_dir: Path, started: datetime) -> dict:
    """<date>-<host>-<scale>.json and .md, plus -ingest.png and -queries.png, in results_dir."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{started:%Y-%m-%d}-{results['machine']['host']}-{results['scale']}"
    paths = {"json": results_dir / f"{stem}.json", "markdown": results_dir / f"{stem}.md",
             "ingest_chart": results_dir / f"{stem}-ingest.png", "query_chart": results_dir / f"{stem}-queries.png"}
    charts.ingest_chart(results, paths["ingest_chart"])
    charts.query_chart(results, paths["query_chart"])
    paths["json"].write_text(report.to_json(results))
    paths["markdown"].write_text(markdown.to_markdown(results, paths))
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description="Count's benchmark (see bench/README.md).")
    parser.add_argument("--scale", choices=sorted(SCALES, key=lambda name: SCALES[name].points), default="small")
    parser.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--work-dir", type=Path, help="where DATA_DIRs and logs go (default: a new temp dir)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent batch-ingest connections")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk measurements")
    parser.add_argument("--keep-data", action="store_true", help="keep the work dir (DATA_DIRs, server logs)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, in this order (default: all): {','.join(PHASES)}")
    args = parser.parse_args(argv)
    phases = tuple(name for name in PHASES if name in args.phases.split(","))
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    results, paths = run_benchmark(SCALES[args.scale], args.results_dir, args.work_dir, args.clients,
                                   not args.no_wrk, args.seed, args.keep_data, phases)
    print(paths["markdown"].read_text())
    for error in results["errors"]:
        print(f"[bench] phase {error['phase']} failed:\n{error['traceback']}", file=sys.stderr)
    print("[bench] wrote " + ", ".join(str(path) for path in paths.values()))
    return 1 if results["errors"] else 0
