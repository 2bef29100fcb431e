"""The metrics folder the gunicorn master prepares: PROMETHEUS_MULTIPROC_DIR or DATA_DIR/node_state/metrics,
emptied of a previous run's metric files (only those: it may be a shared /tmp) and exported to the workers; and
each process's metric files, allocated up front or, on a full disk, taken from the spare sets."""

from __future__ import annotations

import errno
import os

from prometheus_client import Gauge
from prometheus_client.metrics import MetricWrapperBase

from countdb.config import Settings
from countdb.obs import metrics
from countdb.obs.multiprocess import (RESERVED_BYTES, RESERVED_FILES, reserve_metric_files,
                                      use_metrics_dir)


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


def test_a_process_takes_spare_metric_files_when_the_disk_is_full(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert reserve_metric_files(spare_sets=2, pid=1)
    names = {path.relative_to(tmp_path).as_posix() for path in tmp_path.rglob("*.db")}
    assert names == {f"{kind}_1.db" for kind in RESERVED_FILES} | {
        f"spare/{kind}_{index}.db" for kind in RESERVED_FILES for index in (0, 1)}
    assert all(path.stat().st_blocks * 512 >= RESERVED_BYTES for path in tmp_path.rglob("*.db"))

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    assert reserve_metric_files(spare_sets=2, pid=2)  # a worker replaced on a full disk: takes a spare set
    assert reserve_metric_files(spare_sets=2, pid=3)
    assert all((tmp_path / f"{kind}_{pid}.db").stat().st_size == RESERVED_BYTES
               for kind in RESERVED_FILES for pid in (2, 3))
    assert not list((tmp_path / "spare").iterdir())
    assert not reserve_metric_files(spare_sets=2, pid=4)  # none left: said, and nothing half-made left behind
    assert not list(tmp_path.glob("*_4.db"))


def test_every_kind_of_metric_count_defines_has_its_file_reserved():
    defined = [value for value in vars(metrics).values() if isinstance(value, MetricWrapperBase)]
    kinds = {f"gauge_{metric._multiprocess_mode}" if isinstance(metric, Gauge) else metric._type for metric in defined}
    assert len(defined) > 10 and kinds <= set(RESERVED_FILES), kinds - set(RESERVED_FILES)
