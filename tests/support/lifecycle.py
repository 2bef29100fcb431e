"""Helpers for compaction, retention and delete tests: the `countdb` command line, the catalog, the files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def countdb(data_dir: Path, *args: str, **env) -> subprocess.CompletedProcess:
    """Run the `countdb` command line against a data directory (the server may be running)."""
    done = subprocess.run([sys.executable, "-m", "countdb", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATA_DIR": str(data_dir), **{k: str(v) for k, v in env.items()}})
    assert done.returncode == 0, done.stderr
    return done


def catalog_rows(data_dir: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(data_dir / "series_index" / "catalog.sqlite") as catalog:
        return catalog.execute(sql).fetchall()


def files_on_disk(data_dir: Path) -> set[str]:
    return {str(p.relative_to(data_dir)) for p in (data_dir / "time_blocks").glob("*/*.parquet")}


def insert_acknowledged(node, body: list[dict]) -> None:
    """POST /insert until acknowledged: a 503 (flushes behind ingest, Retry-After) is retried as a client
    would; tiny test buffers make it likely on a busy machine."""
    for _ in range(100):
        status = node.post("/insert", json=body).status_code
        if status != 503:
            break
        time.sleep(0.1)
    assert status == 201
