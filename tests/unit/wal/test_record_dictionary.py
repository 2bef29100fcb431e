"""Parsed requests (Columns) over ROWS_LIMIT points go to the WAL with their keys dictionary-encoded (issue 2:
worker RSS): each distinct key is stored once, and the points read back exactly as written."""

from __future__ import annotations

import pyarrow as pa

from countdb.wal.record import (ARROW_STREAM, ROWS_LIMIT, SERIES_TYPE, Columns, decode_points, encode_points,
                                records_to_table)

KEYS = [f'cpu.usage_user{{hostname="host_{n}",region="eu-west-{n % 3}",team="storage"}}' for n in range(7)]


def _columns(count: int, first_ts: int = 0) -> Columns:
    return Columns([KEYS[i % len(KEYS)] for i in range(count)], list(range(first_ts, first_ts + count)),
                   [i * 0.5 - 3.0 for i in range(count)])


def test_a_parsed_batch_is_a_dictionary_stream_that_reads_back_exactly():
    points = _columns(ROWS_LIMIT * 40)
    record_type, payload = encode_points(points)
    assert record_type == ARROW_STREAM
    assert len(payload) < sum(len(key) for key in points.series) / 2  # keys stored once, not once per row
    batch = decode_points(record_type, bytes(payload))
    assert batch.schema.field("series").type == SERIES_TYPE
    assert len(batch.column(0).dictionary) == len(KEYS)
    assert batch.to_pydict() == {"series": points.series, "ts": points.ts, "value": points.values}


def test_records_to_table_keeps_rows_in_log_order_across_record_kinds():
    small, parsed = _columns(3, first_ts=10_000), _columns(ROWS_LIMIT + 5)
    arrow = decode_points(*encode_points(_columns(ROWS_LIMIT + 1, first_ts=20_000)))
    table = records_to_table([(1, small), (2, parsed), (3, arrow)])
    assert table.column("series").type == SERIES_TYPE
    assert table.column("series").to_pylist() == small.series + parsed.series + arrow.column(0).to_pylist()
    assert table.column("ts").to_pylist() == small.ts + parsed.ts + arrow.column(1).to_pylist()
    assert table.column("seq").to_pylist() == [1] * 3 + [2] * len(parsed) + [3] * arrow.num_rows
    assert table.column("pos").to_pylist() == list(range(table.num_rows))
    assert pa.types.is_dictionary(table.schema.field("series").type)
