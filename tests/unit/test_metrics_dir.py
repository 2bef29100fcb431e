"""The metrics folder the gunicorn master prepares: PROMETHEUS_MULTIPROC_DIR or DATA_DIR/node_state/metrics,
emptied of a previous run's metric files (only those: it may be a shared /tmp) and exported to the workers."""

from __future__ import annotations

import os

from countdb.config import Settings
from countdb.obs.multiprocess import use_metrics_dir


def test_the_folder_is_cleared_of_old_metric_files_only_and_exported(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "restored-after-the-test")
    folder = tmp_path / "metrics"
    folder.mkdir()
    stale = ["counter_123.db", "histogram_9.db", "gauge_livesum_77.db", "gauge_all_5.db"]
    kept = ["notes.txt", "counter_abc.db", "something_else_1.db"]
    for name in stale + kept:
        (folder / name).write_bytes(b"x")
    assert use_metrics_dir(folder) == folder
    assert sorted(path.name for path in folder.iterdir()) == sorted(kept)
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(folder)


def test_the_folder_is_created_when_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "restored-after-the-test")
    assert use_metrics_dir(tmp_path / "a" / "b").is_dir()


def test_the_default_is_under_the_data_dir_and_the_variable_overrides_it(tmp_path):
    default = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert default.metrics_dir is None
    assert default.describe()["metrics_dir"] == str(tmp_path / "node_state" / "metrics")
    chosen = Settings.from_env({"DATA_DIR": str(tmp_path), "PROMETHEUS_MULTIPROC_DIR": "/tmp/count-metrics"})
    assert chosen.describe()["metrics_dir"] == "/tmp/count-metrics"
