"""latest_per_point: sorted by series then ts, one row per (series, ts), the latest write (seq, then pos) kept."""

import random

import pyarrow as pa
import pytest

from countdb.ingest.flush import _series_extents, latest_per_point
from countdb.ingest.parse import parse_arrow
from countdb.wal.record import Columns, records_to_table


def _expected(records: list[tuple[int, Columns]]) -> list[tuple[str, int, float, int]]:
    latest: dict[tuple[str, int], tuple[float, int]] = {}
    for seq, columns in sorted(records, key=lambda record: record[0]):  # later seq, then later pos, wins
        for key, ts, value in zip(columns.series, columns.ts, columns.values):
            latest[key, ts] = (value, seq)
    return [(key, ts, value, seq) for (key, ts), (value, seq) in sorted(latest.items())]


def _rows(table: pa.Table) -> list[tuple[str, int, float, int]]:
    return list(zip(table["series"].to_pylist(), table["ts"].to_pylist(), table["value"].to_pylist(),
                    table["seq"].to_pylist()))


def test_later_seq_and_later_position_win():
    records = [(5, Columns(["b", "a", "a"], [1, 2, 2], [1.0, 2.0, 3.0])),  # a@2 twice: position 2 wins
               (3, Columns(["b", "c"], [1, 0], [9.0, 4.0]))]  # logged later, but an older seq: b@1 loses
    assert _rows(latest_per_point(records_to_table(records))) == [("a", 2, 3.0, 5), ("b", 1, 1.0, 5),
                                                                   ("c", 0, 4.0, 3)]


def test_matches_a_plain_model_on_random_batches_with_dictionaries():
    rng = random.Random(7)
    records = []
    for seq in rng.sample(range(1, 1000), 12):
        count = rng.randint(1, 300)
        columns = Columns([f"s{rng.randint(0, 9)}" for _ in range(count)], [rng.randint(0, 50) for _ in range(count)],
                          [rng.random() for _ in range(count)])
        batch = pa.record_batch([pa.array(columns.series).dictionary_encode(), pa.array(columns.ts, pa.int64()),
                                 pa.array(columns.values, pa.float64())], names=["series", "ts", "value"])
        records.append((seq, batch if seq % 2 else columns))
    expected = _expected([(seq, points if isinstance(points, Columns) else
                           Columns(points["series"].to_pylist(), points["ts"].to_pylist(), points["value"].to_pylist()))
                          for seq, points in records])
    assert _rows(latest_per_point(records_to_table(records))) == expected


def test_an_arrow_dictionary_that_repeats_a_key_still_keeps_one_point():
    series = pa.DictionaryArray.from_arrays(pa.array([0, 1], pa.int32()), pa.array(["a", "a"]))
    batch = pa.record_batch([series, pa.array([5, 5], pa.int64()), pa.array([1.0, 2.0])],
                            names=["series", "timestamp", "value"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as stream:
        stream.write_batch(batch)
    parsed = parse_arrow(sink.getvalue().to_pybytes(), 100)
    assert _rows(latest_per_point(records_to_table([(1, parsed[0])]))) == [("a", 5, 2.0, 1)]


def test_series_extents_are_each_series_first_and_last_timestamp():
    table = latest_per_point(records_to_table([(1, Columns(["b", "a", "b", "c", "a"], [5, 3, 1, 9, 7], [1.0] * 5))]))
    assert [(e.key, e.first_ts, e.last_ts) for e in _series_extents(table, {})] == [("a", 3, 7), ("b", 1, 5),
                                                                                    ("c", 9, 9)]


@pytest.mark.parametrize("steps", [[10, 20, 30, 40], [10, 30, 20, 40], [10, 20, 20, 40]],
                         ids=["in time order", "one series goes back in time", "one point written twice"])
def test_time_major_requests_come_out_sorted_by_series_then_time(steps):
    # each request holds every series at two timestamps, time-major, as agents send them
    records = [(seq, Columns(["c", "a", "b"] * 2, [steps[2 * n]] * 3 + [steps[2 * n + 1]] * 3,
                             [float(seq)] * 3 + [float(seq) + 0.5] * 3)) for n, seq in enumerate([1, 2])]
    assert _rows(latest_per_point(records_to_table(records))) == _expected(records)
