"""The benchmark end to end at the `tiny` scale (100k points), through `python -m bench` as bench/run calls it.

No timing is asserted: only that every phase ran, every file was written and every figure is sane and non-zero,
so a benchmark that silently measures nothing (or a server that loses points on flush) fails here, not in a report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `bench` is a folder of the repo, not an installed package
IN_CI = os.environ.get("CI") == "true"
TINY_POINTS = 100_000

pytestmark = pytest.mark.timeout(150)


def _require(condition: bool, why: str) -> None:
    """Outside CI a missing bench tool skips, saying what to install; in CI it fails (.ci installs them)."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{why} (CI must install it)")
        pytest.skip(why)


def _kind(path: Path) -> str:
    """".json", ".md", "ingest.png" or "queries.png": which of the run's outputs a file is."""
    for ending in ("-ingest.png", "-queries.png", ".json", ".md"):
        if path.name.endswith(ending):
            return ending.lstrip("-")
    return path.name


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    missing = [name for name in ("numpy", "matplotlib", "cramjam") if importlib.util.find_spec(name) is None]
    _require(not missing, f"bench requirements not installed: {missing}; pip install -r bench/requirements.txt")
    results_dir = tmp_path_factory.mktemp("bench-results")
    work_dir = tmp_path_factory.mktemp("bench-work")
    done = subprocess.run([sys.executable, "-m", "bench", "--scale", "tiny", "--results-dir", str(results_dir),
                           "--work-dir", str(work_dir), "--keep-data"],
                          cwd=REPO, capture_output=True, text=True, timeout=140)
    logs = "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in work_dir.glob("*.log"))
    assert done.returncode == 0, \
        f"bench failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}\n{logs}"
    files = {_kind(path): path for path in results_dir.iterdir()}
    yield json.loads(files[".json"].read_text()), files
    shutil.rmtree(work_dir, ignore_errors=True)


def test_every_output_file_is_written(bench_run):
    results, files = bench_run
    assert set(files) == {".json", ".md", "ingest.png", "queries.png"}
    for name in ("ingest.png", "queries.png"):
        assert files[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert files[name].stat().st_size > 10_000
    markdown = files[".md"].read_text()
    for target in results["targets"]:
        assert target["label"] in markdown
    assert files["ingest.png"].name in markdown and files["queries.png"].name in markdown


def test_the_run_describes_its_machine_and_data(bench_run):
    results, _ = bench_run
    assert results["errors"] == []
    machine = results["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["python"]
    assert machine["libraries"]["pyarrow"] and machine["libraries"]["duckdb"]
    assert results["dataset"]["points"] == TINY_POINTS


def test_every_point_is_written_once_and_measured(bench_run):
    results, _ = bench_run
    ingest = results["ingest"]
    measured = [r for r in ingest["protocols"].values() if r["available"]]
    assert measured, "no ingest protocol was available"
    for result in measured:
        assert result["points"] > 0 and result["points_per_s_median"] > 0 and result["request_ms_p50"] > 0
        assert set(result["statuses"]) <= {"200", "201", "204", "429", "503"}, result["statuses"]
    written = sum(r["points"] for r in measured) + sum(b["points"] for b in ingest["backfill"])
    assert written == ingest["points_written"] == TINY_POINTS
    assert results["rss"]["max_worker_peak_mb"] > 10


def test_storage_holds_exactly_the_points_written(bench_run):
    results, _ = bench_run
    from bench.dataset import VALUE_SHAPES

    shapes = [f"{shape}{stage}" for shape in VALUE_SHAPES for stage in ("", "_compacted")]
    for name in ("cpu", "cpu_compacted", "exporter", "exporter_compacted", *shapes):
        storage = results["storage"][name]
        assert storage["stored_rows"] == storage["points"] > 0, name
        assert storage["parquet_bytes"] > 0 and storage["bytes_per_point"] > 0
        assert storage["zstd_parquet"]["sorted"]["bytes_per_point"] > 0


def test_queries_are_timed_against_duckdb(bench_run):
    results, _ = bench_run
    for kind in ("range_1h", "step_1m_1d"):
        query = results["queries"][kind]
        assert query["count"]["available"], query["count"]
        assert query["count"]["statuses"] == {"200": query["count"]["samples"]}
        assert query["count"]["p50_ms"] > 0 and query["count"]["rows_total"] > 0
        assert query["duckdb"]["p50_ms"] > 0 and query["ratio"]["p50"] > 0
    statuses = {target["status"] for target in results["targets"]}
    assert statuses <= {"met", "MISSED", "not measured"}


def test_queries_are_timed_before_and_after_the_compactor_catches_up(bench_run):
    results, _ = bench_run
    stages, catch_up = results["query_stages"], results["query_catch_up"]
    assert list(stages) == ["after_ingest", "after_2_minutes", "compacted"]
    assert stages["after_2_minutes"]["began_s_after_restart"] >= 3  # the tiny scale's catch_up_seconds
    assert stages["compacted"]["queries"] == results["queries"]
    assert set(catch_up["by_kind"]["range_1h"]) == {"after_ingest", "after_2_minutes"}
    for stage in ("after_ingest", "after_2_minutes"):
        assert catch_up["worst"][stage] == max(ratios[stage] for ratios in catch_up["by_kind"].values())
        assert stages[stage]["block_files"] >= stages["compacted"]["block_files"] > 0
    labels = {target["label"] for target in results["targets"]}
    assert "2 minutes after ingest: slowest query kind's p50 vs compacted" in labels


def test_big_results_reach_a_pyarrow_client_over_http_and_flight(bench_run):
    results, _ = bench_run
    for route in ("http", "flight"):
        for name, result in results["transfer"][route].items():
            assert result["rows"] >= TINY_POINTS and result["points_per_s_median"] > 0, (route, name)
            assert "note" not in result, result["note"]
        assert results["transfer"][route]["series_ts_value"]["runs"][0]["series_type"].startswith("dictionary<")


def test_wrk_measures_inserts_and_query_load(bench_run):
    results, _ = bench_run
    _require(shutil.which("wrk") is not None, "wrk not installed (apt-get install wrk)")
    for key, status in (("single_insert", 201), ("query_load", 200)):
        load = results[key]
        assert load["available"] and load["expected_status"] == status
        assert load["requests"] > 0 and load["expected_per_s_median"] > 0
        assert 0 < load["latency_ms_p50"] <= load["latency_ms_p99"]


def test_every_wire_format_carries_the_same_points():
    _require(importlib.util.find_spec("numpy") is not None, "numpy not installed (bench/requirements.txt)")
    from bench.dataset import SCALES, CpuDataset
    from bench.decode import decode_all

    dataset = CpuDataset(SCALES["tiny"])
    points = dataset.points(0, 50)
    expected = sorted(zip((points.series.keys[i] for i in points.idx), points.ts.tolist(), points.value.tolist()))
    for name, decoded in decode_all(dataset, 0, 50).items():
        assert sorted(decoded) == expected, name
