"""Damaged block files of a real data directory (truncated, deleted, corrupted) don't stop a real server:
queries over the rest answer, the damaged files are quarantined, /health says degraded, flushes go on."""

from __future__ import annotations

import os
import sqlite3

from countdb.model import YearMonth
from countdb.wal.segment import HEADER, read_segment

SERIES = "damage.cpu"
MONTHS = {name: YearMonth(2023, number) for number, name in
          enumerate(["truncated", "deleted", "corrupted", "intact", "flushed_over"], start=1)}
POINTS_PER_MONTH = 200


def month_points(month: YearMonth) -> list[dict]:
    return [{"series": SERIES, "timestamp": month.start_ms() + i * 1000, "value": float(i)}
            for i in range(POINTS_PER_MONTH)]


def block_of(data_dir, month: YearMonth):
    (block,) = (data_dir / "time_blocks" / str(month)).glob("points-*.parquet")
    return block


def truncate(path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def corrupt(path) -> None:
    """Invert every byte between the leading magic and the trailing footer length: same size, unreadable."""
    data = bytearray(path.read_bytes())
    data[4:-8] = bytes(b ^ 0xFF for b in data[4:-8])
    path.write_bytes(bytes(data))


def query(node, month: YearMonth):
    return node.get(f"/query/range/{SERIES}", params={"start": month.start_ms(), "end": month.end_ms()})


def test_damaged_blocks_are_quarantined_and_the_rest_keeps_answering(count_server):
    node = count_server(WORKERS=1, MEMORY_BUFFER_SIZE=100_000)
    for month in MONTHS.values():
        assert node.post("/insert", json=month_points(month)).status_code == 201
    assert node.stop() == 0  # one block per month
    data_dir = node.data_dir
    truncate(block_of(data_dir, MONTHS["truncated"]))
    block_of(data_dir, MONTHS["deleted"]).unlink()
    corrupt(block_of(data_dir, MONTHS["corrupted"]))
    truncate(block_of(data_dir, MONTHS["flushed_over"]))

    node = count_server(data_dir=data_dir, WORKERS=2, MEMORY_BUFFER_SIZE=100_000)
    assert node.get("/health").json()["status"] == "healthy"  # nothing has read the damage yet
    # A write into a damaged month: its flush (at stop) must read the stored blocks of that month.
    late = {"series": SERIES, "timestamp": MONTHS["flushed_over"].start_ms() + 500, "value": -1.0}
    assert node.post("/insert", json=late).status_code == 201

    for name in ("truncated", "deleted", "corrupted"):
        response = query(node, MONTHS[name])
        assert response.status_code == 200, (name, response.text)
        assert response.json() == [], name
    assert len(query(node, MONTHS["intact"]).json()) == POINTS_PER_MONTH
    first_four = node.get(f"/query/range/{SERIES}", params={"start": 0, "end": MONTHS["intact"].end_ms()})
    assert first_four.status_code == 200 and len(first_four.json()) == POINTS_PER_MONTH

    health = node.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "degraded" and body["damaged_files"] == 3
    assert {d["problem"] for d in body["damaged"]} == {"size", "missing", "unreadable"}
    assert "\ncount_damaged_files 3.0\n" in node.get("/metrics").text
    quarantine = data_dir / "node_state" / "quarantine" / "time_blocks"
    assert sorted(p.parent.name for p in quarantine.glob("*/*.parquet")) == ["2023-01", "2023-03"]

    assert node.stop() == 0  # the flush of the late point meets the truncated block of its month
    catalog = sqlite3.connect(data_dir / "series_index" / "catalog.sqlite")
    flushed_over = catalog.execute("SELECT count(*) FROM damaged_files WHERE path LIKE 'time_blocks/2023-05/%'")
    assert flushed_over.fetchone() == (1,)
    catalog.close()
    assert not list((data_dir / "wal").glob("*/*.wal"))  # the flush succeeded: nothing left to replay
    node = count_server(data_dir=data_dir, WORKERS=1)
    assert query(node, MONTHS["flushed_over"]).json() == [{"timestamp": late["timestamp"], "value": -1.0}]
    body = node.get("/health").json()
    assert body["status"] == "degraded" and body["damaged_files"] == 4
    node.stop()


def test_a_corrupt_wal_segment_left_by_a_crash_does_not_stop_the_node(count_server):
    node = count_server(WORKERS=1, MEMORY_BUFFER_SIZE=100_000)
    start = YearMonth(2023, 7).start_ms()
    for i in range(6):
        assert node.post("/insert", json={"series": "damage.wal", "timestamp": start + i, "value": 1.0}).status_code == 201
    node.kill_all()
    (segment,) = [p for p in (node.data_dir / "wal").glob("*/*.wal") if p.stat().st_size > 8]
    frames, _, _ = read_segment(segment)
    data = bytearray(segment.read_bytes())
    data[frames[2].offset + HEADER.size + 1] ^= 0xFF
    segment.write_bytes(bytes(data))

    node = count_server(data_dir=node.data_dir, WORKERS=2)  # WAL_REPLAY=repair, the default
    answer = node.get("/query/range/damage.wal", params={"start": start, "end": start + 10}).json()
    assert [p["timestamp"] for p in answer] == [start, start + 1]  # the records before the damage
    body = node.get("/health").json()
    assert body["status"] == "degraded"
    assert [(d["path"], d["problem"]) for d in body["damaged"]] == [
        (str(segment.relative_to(node.data_dir)), "bad_crc")]
    node.stop()
