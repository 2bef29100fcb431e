"""The soak phase (bench/soak.py) for 21 seconds instead of 30 minutes, through `python -m bench.soak` as a person
runs it: the same clients, samples and checks, so a soak that measures nothing, a failed request, a lost point or a
gross leak fails here rather than in the half-hour run.

Latency is not judged (21 s on a shared machine say little about p99); memory and open files get a loose bound.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI") == "true"
SECONDS, SAMPLE_SECONDS, CLIENTS, HISTORY_STEPS = 21, 1, 8, 360  # one hour at 10 s
GROSS_GROWTH = 1.5  # a leak that shows within 21 s; the full run judges 1.10

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def soak(tmp_path_factory):
    missing = [name for name in ("numpy", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing and IN_CI:
        pytest.fail(f"bench requirements not installed: {missing} (CI must install them)")
    if missing:
        pytest.skip(f"bench requirements not installed: {missing}; pip install -r bench/requirements.txt")
    results_dir = tmp_path_factory.mktemp("soak-results")
    done = subprocess.run([sys.executable, "-m", "bench.soak", "--minutes", str(round(SECONDS / 60, 4)), "--probe-seconds", "4",
                           "--sample-seconds", str(SAMPLE_SECONDS), "--history-hours", "1",
                           "--clients", str(CLIENTS), "--results-dir", str(results_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"bench.soak failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    files = {path.suffix: path for path in results_dir.iterdir()}
    return json.loads(files[".json"].read_text()), files


def test_every_request_succeeds_at_the_rate_asked(soak):
    report, _ = soak
    assert report["capacity"]["ops_per_second"] > 10
    assert report["rate_asked"] == round(0.7 * report["capacity"]["ops_per_second"], 1)
    # open loop: the schedule's rate, not the clients' best (a shared machine may slow them, never speed them up)
    assert 0.5 * report["rate_asked"] <= report["ops_per_second_reached"] <= 1.05 * report["rate_asked"]
    assert report["failed_requests"] == 0 and report["first_failures"] == []
    for kind, requests in report["requests"].items():
        assert requests["count"] > 0, kind
        assert sum(requests["statuses"].values()) == requests["count"], kind
        assert all(status.startswith("2") for status in requests["statuses"]), (kind, requests["statuses"])
        assert 0 < requests["p50_ms"] <= requests["p99_ms"], kind


def test_every_acknowledged_point_is_stored_once_also_after_a_restart(soak):
    report, _ = soak
    assert report["history_points"] == CLIENTS * HISTORY_STEPS * report["points_per_write"]
    written_in_soak = report["requests"]["write"]["count"] * report["points_per_write"]
    assert report["acknowledged_points"] >= report["history_points"] + written_in_soak
    for moment in ("live", "after_restart"):
        stored = report["stored"][moment]
        assert stored["rows"] == stored["distinct"] == report["acknowledged_points"], moment
    assert report["lost_points"] == 0 and report["every_acknowledged_point_once"] is True
    assert report["stored"]["stop"]["exit_code"] == 0 and not report["stored"]["stop"]["hung"]


def test_samples_cover_the_run_with_memory_and_descriptors(soak):
    report, _ = soak
    samples = report["samples"]
    assert len(samples) >= 0.8 * SECONDS / SAMPLE_SECONDS
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert report["worker_pids_seen"] == samples[0]["workers"] >= 2  # no worker died and was replaced
    for sample in samples:
        rss, files = sample["rss_mb"], sample["open_files"]
        assert rss["master"] > 20 and rss["max_worker"] > 50
        assert rss["sum"] >= rss["master"] + rss["max_worker"] - 0.2  # each figure is rounded to 0.1
        assert files["sum"] >= files["master"] + files["max_worker"] > 10
        assert sample["failed"] == 0 and sample["block_files"] > 0
        cpu = sample["cpu_cores"]
        assert set(cpu) == {"workers", "compactor", "node_other", "busy", "steal"}
        assert all(0 <= cores <= 1.5 * os.cpu_count() for cores in cpu.values()), cpu
        assert cpu["busy"] >= 0.9 * (cpu["workers"] + cpu["compactor"] + cpu["node_other"]) - 0.05, cpu
    assert max(s["cpu_cores"]["workers"] for s in samples) > 0.1  # the soak's load is served by the workers
    assert sum(s["write"]["count"] for s in samples) >= 0.9 * report["requests"]["write"]["count"]


def test_start_and_end_are_compared_and_memory_and_files_do_not_grow_grossly(soak):
    report, _ = soak
    compared = report["start_vs_end"]
    windows = compared["windows_s"]
    assert 0 < windows["start"][0] < windows["start"][1] <= windows["end"][0] < windows["end"][1]
    assert windows["end"][1] == pytest.approx(SECONDS)
    assert set(compared["compared"]) == {"rss_sum_mb", "rss_max_worker_mb", "open_files", "write_p99_ms",
                                         "query_p99_ms"}
    for name, figure in compared["compared"].items():
        assert figure["start"] > 0 and figure["end"] > 0, name
        assert figure["ratio"] == pytest.approx(figure["end"] / figure["start"], abs=0.01), name
        assert figure["verdict"] == ("flat" if figure["ratio"] <= 1.10 else "MISSED"), name
    assert compared["all_flat"] == all(f["verdict"] == "flat" for f in compared["compared"].values())
    for name in ("rss_sum_mb", "rss_max_worker_mb", "open_files"):
        assert compared["compared"][name]["ratio"] <= GROSS_GROWTH, (name, compared["compared"][name])
    assert set(compared["cpu_cores"]) == {"workers", "compactor", "node_other", "busy", "steal"}
    assert compared["cpu_cores"]["workers"]["start"] > 0.1


def test_results_and_chart_are_written_beside_each_other(soak):
    report, files = soak
    assert set(files) == {".json", ".png"}
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d-{re.escape(socket.gethostname())}-soak", files[".json"].stem)
    assert files[".png"].stem == files[".json"].stem
    assert files[".png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and files[".png"].stat().st_size > 20_000
