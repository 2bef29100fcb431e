"""Compaction on a real node: while points are written and queried in a loop, the background compactor and
`countdb compact` merge blocks, and every query sees each acknowledged point exactly once; a background compaction
that keeps failing shows in /health until it works again."""

from __future__ import annotations

import os
import signal
import threading

import duckdb
from support.lifecycle import catalog_rows, countdb, files_on_disk, insert_acknowledged
from support.waiting import wait_for

JAN_2023 = 1_672_531_200_000
LOAD_ENV = dict(MEMORY_BUFFER_SIZE=20, FLUSH_INTERVAL_SECONDS=1, COMPACTION_INTERVAL_SECONDS=0.3,
                QUERY_TIMEOUT_SECONDS=1, WORKERS=2)


class Workload:
    """Writes batches (some overwriting earlier points) and records what was acknowledged, in order."""

    def __init__(self, node, series: str, batches: int):
        self.node, self.series, self.batches = node, series, batches
        self.history: dict[int, list[float]] = {}  # ts -> every value written, acknowledged or in flight
        self.acked: dict[int, float] = {}  # ts -> last acknowledged value
        self.lock = threading.Lock()
        self.done = threading.Event()

    def run(self) -> None:
        try:
            for n in range(self.batches):
                points = {JAN_2023 + 10 * n + i: float(n * 10 + i) for i in range(10)}
                if n % 7 == 6:  # overwrite three earlier points: shadows for the compactor to apply
                    points.update({JAN_2023 + 10 * (n - 5) + i: -float(n) for i in range(3)})
                self.write(points)
        finally:
            self.done.set()

    def write(self, points: dict[int, float]) -> None:
        with self.lock:
            for ts, value in points.items():
                self.history.setdefault(ts, []).append(value)
        insert_acknowledged(self.node, [{"series": self.series, "timestamp": ts, "value": v}
                                        for ts, v in points.items()])
        with self.lock:
            self.acked.update(points)


def check_queries_while(workload: Workload, problems: list[str]) -> int:
    """Query the whole series in a loop until the workload ends; returns how many queries ran."""
    queries = 0
    while not workload.done.is_set():
        with workload.lock:
            acked_before = dict(workload.acked)
        rows = workload.node.get(f"/query/range/{workload.series}",
                                 params={"start": JAN_2023, "end": JAN_2023 + 10**7}).json()
        with workload.lock:
            history = {ts: list(values) for ts, values in workload.history.items()}
        seen = [row["timestamp"] for row in rows]
        if len(seen) != len(set(seen)):
            problems.append(f"query {queries}: a point appears twice")
        missing = set(acked_before) - set(seen)
        if missing:
            problems.append(f"query {queries}: {len(missing)} acknowledged points missing, e.g. {min(missing)}")
        wrong = [row for row in rows if row["value"] not in history.get(row["timestamp"], ())]
        if wrong:
            problems.append(f"query {queries}: values never written: {wrong[:3]}")
        queries += 1
    return queries


def test_queries_during_ingest_and_compaction_see_every_point_exactly_once(count_server):
    node = count_server(**LOAD_ENV)
    workload = Workload(node, "compaction.load", batches=300)
    writer = threading.Thread(target=workload.run)
    writer.start()
    problems: list[str] = []
    checkers = [threading.Thread(target=lambda: problems.append(check_queries_while(workload, problems)))
                for _ in range(2)]
    for checker in checkers:
        checker.start()
    while not workload.done.is_set():
        countdb(node.data_dir, "compact", QUERY_TIMEOUT_SECONDS=1)
        workload.done.wait(1.0)  # leave turns to the node's own compactor too
    writer.join()
    for checker in checkers:
        checker.join()
    failures = [p for p in problems if isinstance(p, str)]
    assert failures == [], failures[:5]
    assert sum(p for p in problems if isinstance(p, int)) > 0
    rows = node.get("/query/range/compaction.load", params={"start": JAN_2023, "end": JAN_2023 + 10**7}).json()
    assert {row["timestamp"]: row["value"] for row in rows} == workload.acked
    assert "compacted 2023-01" in node.log_text()
    node.stop()


def test_compact_on_demand_leaves_one_block_no_shadows_and_deletes_old_files_after_the_grace(count_server):
    quiet = {**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 0}
    node = count_server(**quiet)
    workload = Workload(node, "compaction.once", batches=40)
    workload.run()
    assert node.stop() == 0
    workload.node = node = count_server(data_dir=node.data_dir, **quiet)
    workload.write({JAN_2023 + i: 1000.0 + i for i in range(5)})  # over stored points: a shadow block
    assert node.stop() == 0
    before = dict(catalog_rows(node.data_dir, "SELECT kind, count(*) FROM blocks GROUP BY kind"))
    assert before["points"] >= 2 and before["shadow"] >= 1
    node = count_server(data_dir=node.data_dir, **quiet)
    report = countdb(node.data_dir, "compact", "--month", "2023-01", QUERY_TIMEOUT_SECONDS=1).stdout
    assert '"month": "2023-01"' in report
    assert catalog_rows(node.data_dir, "SELECT kind, count(*) FROM blocks GROUP BY kind") == [("points", 1)]
    published = {path for (path,) in catalog_rows(node.data_dir, "SELECT path FROM blocks")}
    assert files_on_disk(node.data_dir) > published  # replaced files wait out the grace period (2 s here)
    assert wait_for(lambda: countdb(node.data_dir, "compact", QUERY_TIMEOUT_SECONDS=1)
                    and files_on_disk(node.data_dir) == published)
    (path,) = published
    rows = duckdb.sql(f"SELECT ts, value FROM read_parquet('{node.data_dir / path}') ORDER BY ts").fetchall()
    assert dict(rows) == workload.acked
    rows = node.get("/query/range/compaction.once", params={"start": JAN_2023, "end": JAN_2023 + 10**7}).json()
    assert {row["timestamp"]: row["value"] for row in rows} == workload.acked
    node.stop()


def test_compact_on_a_stopped_node_deletes_the_replaced_files_at_once(count_server):
    node = count_server(**{**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 0})
    workload = Workload(node, "compaction.offline", batches=30)
    workload.run()
    assert node.stop() == 0
    assert len(files_on_disk(node.data_dir)) > 1
    countdb(node.data_dir, "compact")  # no worker alive: no query can still be reading them
    published = {path for (path,) in catalog_rows(node.data_dir, "SELECT path FROM blocks")}
    assert len(published) == 1 and files_on_disk(node.data_dir) == published


def test_health_says_while_background_compaction_fails_and_stops_once_it_works(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=10, FLUSH_INTERVAL_SECONDS=300, COMPACTION_INTERVAL_SECONDS=0.3, WORKERS=1)
    staging = node.data_dir / "node_state" / "compaction"

    def block_staging() -> bool:
        """A file where the compactor makes its staging folder: every run fails. NOTE: a round (every 0.3 s)
        has the folder while it runs, and removes it when it ends: try again until it is gone."""
        try:
            staging.write_text("in the way")
        except IsADirectoryError:
            return False
        return True

    assert wait_for(block_staging, 15)
    for batch in range(5):  # five flushed files of one month: work for the compactor
        insert_acknowledged(node, [{"series": "c.fail", "timestamp": JAN_2023 + 10 * batch + i, "value": 1.0}
                                   for i in range(10)])

    def health() -> dict:
        return node.get("/health").json()

    assert wait_for(lambda: any("background compaction has been failing" in p for p in health()["problems"]), 15)
    assert health()["status"] == "degraded" and node.get("/health").status_code == 200
    assert node.get("/status").json()["compaction"]["last"]["failing_since"] > 0
    staging.unlink()
    assert wait_for(lambda: health()["status"] == "healthy", 15), health()
    assert len(node.get("/query/range/c.fail", params={"start": JAN_2023, "end": JAN_2023 + 100}).json()) == 50


def test_a_node_started_on_small_blocks_merges_them_without_waiting_its_interval(count_server):
    node = count_server(**{**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 0})
    points_blocks = "SELECT count(*) FROM blocks WHERE kind = 'points'"
    acked = {}
    for flush in range(5):  # each batch fills the 20-point buffer: five flushes, five small blocks of one tier
        batch = {JAN_2023 + 100 * flush + i: float(flush * 100 + i) for i in range(30)}
        insert_acknowledged(node, [{"series": "compaction.backlog", "timestamp": ts, "value": value}
                                   for ts, value in batch.items()])
        acked.update(batch)
        assert wait_for(lambda n=flush + 1: catalog_rows(node.data_dir, points_blocks)[0][0] == n, 15)
    assert node.stop() == 0
    node = count_server(data_dir=node.data_dir, **{**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 600})
    assert wait_for(lambda: catalog_rows(node.data_dir, points_blocks)[0][0] == 1, 30)  # the interval is 10 minutes
    rows = node.get("/query/range/compaction.backlog", params={"start": JAN_2023, "end": JAN_2023 + 10**7}).json()
    assert {row["timestamp"]: row["value"] for row in rows} == acked
    node.stop()


def test_the_compactor_runs_in_a_process_of_its_own_and_is_restarted_when_it_dies(count_server):
    node = count_server(**{**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 0})
    assert node.helper_pid("compactor") is None, "COMPACTION_INTERVAL_SECONDS=0: none"
    points_blocks = "SELECT count(*) FROM blocks WHERE kind = 'points'"
    for flush in range(4):  # four small blocks of one tier: what a merge needs
        insert_acknowledged(node, [{"series": "compaction.process", "timestamp": JAN_2023 + 100 * flush + i,
                                    "value": float(i)} for i in range(30)])
        assert wait_for(lambda n=flush + 1: catalog_rows(node.data_dir, points_blocks)[0][0] == n, 15)
    assert node.stop() == 0
    node = count_server(data_dir=node.data_dir, **{**LOAD_ENV, "COMPACTION_INTERVAL_SECONDS": 600})
    first = node.helper_pid("compactor")
    assert first is not None
    os.kill(first, signal.SIGKILL)  # before its first round, 5 s after it started
    assert wait_for(lambda: node.helper_pid("compactor") not in (None, first), 15), node.log_tail()
    assert wait_for(lambda: catalog_rows(node.data_dir, points_blocks)[0][0] == 1, 30), node.log_tail()
    rows = node.get("/query/range/compaction.process", params={"start": JAN_2023, "end": JAN_2023 + 10**7}).json()
    assert len(rows) == 120
    node.stop()
