"""DELETE /series/{series} and `countdb delete` on a real node: hidden at once from every worker, stored or
unflushed, across restarts; a later write is kept; compaction removes the deleted rows from disk."""

from __future__ import annotations

import duckdb
import pytest

from support.lifecycle import catalog_rows, countdb

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WIDE = {"start": T0, "end": T0 + 10**6}


def write(node, series: str, points: dict[int, float]) -> None:
    body = [{"series": series, "timestamp": ts, "value": v} for ts, v in points.items()]
    assert node.post("/insert", json=body).status_code == 201


def visible(node, series: str) -> dict[int, float]:
    """The series as several requests see it (2 workers: each answers some of them)."""
    answers = [node.get(f"/query/range/{series}", params=WIDE).json() for _ in range(6)]
    assert all(answer == answers[0] for answer in answers)
    return {row["timestamp"]: row["value"] for row in answers[0]}


def delete(node, series: str, **bounds):
    return node.session.delete(f"{node.url}/series/{series}", params=bounds, timeout=30)


def test_a_delete_hides_stored_and_unflushed_points_at_once_and_a_later_write_is_kept(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100_000, FLUSH_INTERVAL_SECONDS=300, COMPACTION_INTERVAL_SECONDS=0)
    write(node, "del.mixed", {T0 + i: float(i) for i in range(10)})
    assert node.stop() == 0  # stored in a block
    node = count_server(data_dir=node.data_dir, MEMORY_BUFFER_SIZE=100_000, FLUSH_INTERVAL_SECONDS=300,
                        COMPACTION_INTERVAL_SECONDS=0)
    write(node, "del.mixed", {T0 + i: float(i) for i in range(10, 20)})  # still in the WAL
    response = delete(node, "del.mixed", start=T0 + 5, end=T0 + 14)
    assert response.status_code == 200
    body = response.json()
    assert (body["series"], body["start"], body["end"]) == ("del.mixed", T0 + 5, T0 + 14) and body["seq"] > 0
    kept = {T0 + i: float(i) for i in (*range(5), *range(15, 20))}
    assert visible(node, "del.mixed") == kept
    write(node, "del.mixed", {T0 + 7: 77.0})  # after the delete: visible
    kept[T0 + 7] = 77.0
    assert visible(node, "del.mixed") == kept
    assert node.stop() == 0  # the deleted WAL points are flushed now, still older than the tombstone
    node = count_server(data_dir=node.data_dir, WORKERS=2, COMPACTION_INTERVAL_SECONDS=0)
    assert visible(node, "del.mixed") == kept
    assert node.get("/query/aggregated/del.mixed", params={**WIDE, "aggregation": "count"}).json() == len(kept)
    countdb(node.data_dir, "compact")
    files = [node.data_dir / path for (path,) in catalog_rows(node.data_dir, "SELECT path FROM blocks")]
    on_disk = duckdb.sql(f"SELECT ts, value FROM read_parquet({[str(f) for f in files]}) "
                         "WHERE series = 'del.mixed'").fetchall()
    assert dict(on_disk) == kept  # compaction reclaimed the deleted rows
    assert visible(node, "del.mixed") == kept
    node.stop()


def test_a_delete_without_bounds_removes_the_whole_series_only(server):
    write(server, "del.all", {T0 + i: 1.0 for i in range(5)})
    write(server, "del.other", {T0: 2.0})
    assert delete(server, "del.all").status_code == 200
    assert visible(server, "del.all") == {}
    assert visible(server, "del.other") == {T0: 2.0}


def test_countdb_delete_works_beside_a_running_server(count_server):
    node = count_server(COMPACTION_INTERVAL_SECONDS=0)
    write(node, 'del.cli{host="a"}', {T0 + i: float(i) for i in range(4)})
    countdb(node.data_dir, "delete", 'del.cli{host="a"}', "--start", str(T0 + 1), "--end", str(T0 + 2))
    assert visible(node, 'del.cli{host="a"}') == {T0: 0.0, T0 + 3: 3.0}
    node.stop()


@pytest.mark.parametrize("bounds, field", [
    ({"start": T0 + 5, "end": T0}, "start"),
    ({"start": "yesterday"}, "start"),
    ({"end": "1.5"}, "end"),
    ({"start": -1}, "start"),
])
def test_bad_delete_bounds_are_400_naming_the_field(server, bounds, field):
    write(server, "del.bad", {T0: 1.0})
    response = delete(server, "del.bad", **bounds)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert visible(server, "del.bad") == {T0: 1.0}
