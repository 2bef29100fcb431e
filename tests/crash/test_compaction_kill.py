"""kill -9 of `countdb compact` at any moment loses nothing and duplicates nothing: new files are published
only by the one catalog transaction that retires the old ones, and leftovers are cleared at the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import duckdb
from support.lifecycle import catalog_rows, insert_acknowledged

JAN_2023 = 1_672_531_200_000
KILL_AFTER_SECONDS = (0.3, 0.6, 0.9, 1.2)


def test_a_killed_compaction_leaves_every_point_exactly_once(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=50, FLUSH_INTERVAL_SECONDS=1, COMPACTION_INTERVAL_SECONDS=0, WORKERS=2)
    expected = {}
    for n in range(60):
        points = {JAN_2023 + 100 * n + i: float(n) for i in range(100)}
        points.update({JAN_2023 + 100 * max(0, n - 3) + i: -float(n) for i in range(5)})  # overwrites
        body = [{"series": f"kill.s{ts % 3}", "timestamp": ts, "value": v} for ts, v in points.items()]
        insert_acknowledged(node, body)
        expected.update(points)
    assert node.stop() == 0
    env = {**os.environ, "DATA_DIR": str(node.data_dir)}
    for delay in KILL_AFTER_SECONDS:
        compaction = subprocess.Popen([sys.executable, "-m", "countdb", "compact"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        compaction.send_signal(signal.SIGKILL)
        compaction.wait(30)
        assert_exactly(node.data_dir, expected)
    node = count_server(data_dir=node.data_dir, WORKERS=2)  # start-up clears what the kills left
    published = {path for (path,) in catalog_rows(node.data_dir, "SELECT path FROM blocks")}
    assert {str(p.relative_to(node.data_dir)) for p in (node.data_dir / "time_blocks").glob("*/*.parquet")} \
        == published
    for series in ("kill.s0", "kill.s1", "kill.s2"):
        rows = node.get(f"/query/range/{series}", params={"start": JAN_2023, "end": JAN_2023 + 10**6}).json()
        assert {row["timestamp"]: row["value"] for row in rows} == {
            ts: v for ts, v in expected.items() if ts % 3 == int(series[-1])}
    node.stop()


def assert_exactly(data_dir, expected: dict[int, float]) -> None:
    """The published blocks, read as a query would (shadows applied), hold every point once."""
    blocks = catalog_rows(data_dir, "SELECT kind, path FROM blocks")
    points = [str(data_dir / path) for kind, path in blocks if kind == "points"]
    shadows = [str(data_dir / path) for kind, path in blocks if kind == "shadow"]
    hidden = (f" AND NOT EXISTS (SELECT 1 FROM read_parquet({shadows}) s WHERE s.series = o.series "
              "AND s.ts = o.ts AND s.seq > o.seq)") if shadows else ""
    rows = duckdb.sql(f"SELECT ts, value FROM read_parquet({points}) o WHERE true{hidden}").fetchall()
    assert len(rows) == len(expected)
    assert dict(rows) == expected
