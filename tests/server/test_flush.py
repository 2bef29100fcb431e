"""Flushing: by size, by age, on shutdown; month folders; files plain DuckDB can read."""

from __future__ import annotations

import duckdb

from support.waiting import wait_for

JAN_2022 = 1_640_995_200_000  # 2022-01-01T00:00:00.000Z


def parquet_rows(data_dir) -> list[tuple]:
    files = sorted((data_dir / "time_blocks").glob("*/[!.]*.parquet"))  # not a flush's .tmp- file
    if not files:
        return []
    return duckdb.sql(f"SELECT series, ts, value FROM read_parquet({[str(f) for f in files]}) "
                      "ORDER BY series, ts").fetchall()


def test_a_full_buffer_is_flushed(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=20, FLUSH_INTERVAL_SECONDS=300, WORKERS=1)
    batch = [{"series": "size", "timestamp": JAN_2022 + i, "value": i} for i in range(25)]
    assert node.post("/insert", json=batch).status_code == 201
    assert wait_for(lambda: len(parquet_rows(node.data_dir)) == 25)
    node.stop()


def test_an_old_buffer_is_flushed_after_the_interval(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100000, FLUSH_INTERVAL_SECONDS=1, WORKERS=1)
    assert node.post("/insert", json={"series": "age", "timestamp": JAN_2022, "value": 1}).status_code == 201
    assert wait_for(lambda: parquet_rows(node.data_dir) == [("age", JAN_2022, 1.0)], seconds=10)
    node.stop()


def test_points_either_side_of_a_month_boundary_land_in_two_month_folders(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100000, WORKERS=2)
    for ts in (JAN_2022 - 1, JAN_2022):
        assert node.post("/insert", json={"series": "edge", "timestamp": ts, "value": ts % 7}).status_code == 201
    assert node.stop() == 0
    folders = sorted(p.name for p in (node.data_dir / "time_blocks").iterdir() if any(p.glob("*.parquet")))
    assert folders == ["2021-12", "2022-01"]
    dec = duckdb.sql(f"SELECT ts FROM read_parquet('{node.data_dir}/time_blocks/2021-12/*.parquet')").fetchall()
    assert dec == [(JAN_2022 - 1,)]


def test_blocks_are_zstd_parquet_sorted_by_series_then_time_and_readable_by_plain_duckdb(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100000, WORKERS=2)
    points = [{"series": f"s{i % 3}", "timestamp": JAN_2022 + 1000 - i, "value": i} for i in range(300)]
    assert node.post("/insert", json=points).status_code == 201
    assert node.stop() == 0
    rows = duckdb.sql(f"SELECT count(*), count(DISTINCT series) FROM "
                      f"read_parquet('{node.data_dir}/time_blocks/*/*.parquet')").fetchall()
    assert rows == [(300, 3)]
    meta = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{node.data_dir}/time_blocks/*/*.parquet')")
    assert {c for (c,) in meta.fetchall()} == {"ZSTD"}
    in_file = parquet_rows(node.data_dir)
    assert [(s, t) for s, t, _ in in_file] == sorted((s, t) for s, t, _ in in_file)


def test_last_write_wins_across_flushes_and_restarts(count_server):
    node = count_server(MEMORY_BUFFER_SIZE=100000, WORKERS=2)
    point = {"series": "lww.flush", "timestamp": JAN_2022}
    assert node.post("/insert", json={**point, "value": 1.0}).status_code == 201
    assert node.stop() == 0  # value 1.0 is now in a block
    node = count_server(data_dir=node.data_dir, MEMORY_BUFFER_SIZE=100000, WORKERS=2)
    assert node.post("/insert", json={**point, "value": 2.0}).status_code == 201  # unflushed, newer
    query = {"start": JAN_2022, "end": JAN_2022}
    assert node.get("/query/range/lww.flush", params=query).json() == [{"timestamp": JAN_2022, "value": 2.0}]
    assert node.stop() == 0  # 2.0 flushed over 1.0: a shadow hides the old block's row
    node = count_server(data_dir=node.data_dir, WORKERS=1)
    assert node.get("/query/range/lww.flush", params=query).json() == [{"timestamp": JAN_2022, "value": 2.0}]
    assert node.get("/query/aggregated/lww.flush", params={**query, "aggregation": "count"}).json() == 1
    node.stop()
