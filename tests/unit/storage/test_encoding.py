"""choose_encodings: the expected pick on typical data, and bit-exact read-back for every pick."""

from __future__ import annotations

import itertools
import struct

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from countdb.storage.encoding import CANDIDATES, DICTIONARY, ZSTD_LEVEL, choose_encodings, writer_options

SERIES, PER_SERIES = 20, 8000  # 160,000 rows in 5 row groups of 32 Ki: more than the sample of 4
FIRST_SEQ = 1_795_000_000_000_000_000
rng = np.random.default_rng(7)


WALK = np.clip(10 + np.cumsum(rng.normal(0, 0.2, (SERIES, PER_SERIES)), axis=1), 0, 100)  # a gauge per series


def held(values: np.ndarray) -> np.ndarray:
    """Each (series, time) value kept for a run of 10 samples on average."""
    changes = np.where(rng.random(values.shape) < 0.1, np.arange(values.shape[1]), 0)
    return np.take_along_axis(values, np.maximum.accumulate(changes, axis=1), axis=1)


def block(value=None, ts=None, seq=None, series: int = SERIES, per_series: int = PER_SERIES) -> pa.Table:
    """`series` x `per_series` points sorted by (series, ts): 10 s steps, one seq per request of 50 steps."""
    steps = np.arange(per_series)
    columns = {
        "series": np.repeat([f"s{i:03d}" for i in range(series)], per_series),
        "ts": np.tile(1_700_000_000_000 + steps * 10_000, series) if ts is None else ts,
        "value": rng.normal(50, 10, series * per_series) if value is None else value,
        "seq": np.tile(FIRST_SEQ + steps // 50 * 37_000_000, series) if seq is None else seq,
    }
    return pa.table(columns)


SCRAPES = 400  # an exporter-like block: many short series (SCRAPES series of SCRAPES samples), in row groups of 128 Ki


def scraped(**columns) -> pa.Table:
    return block(series=SCRAPES, per_series=SCRAPES, **columns)


def column_bytes(table: pa.Table, column: str, encoding: str, row_group_size: int) -> int:
    """Compressed bytes of `column` when the whole table is written with `encoding` for it."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **writer_options({column: encoding}, ZSTD_LEVEL, row_group_size))
    metadata = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    index = table.column_names.index(column)
    return sum(metadata.row_group(g).column(index).total_compressed_size for g in range(metadata.num_row_groups))


def chosen(options: dict, column: str) -> str:
    return DICTIONARY if column in options["use_dictionary"] else options["column_encoding"][column]


@pytest.mark.parametrize("name, table, column, expected", [
    ("noisy float gauge", block(), "value", "BYTE_STREAM_SPLIT"),
    ("few-distinct gauge", block(value=rng.choice([0.0, 1.0, 2.0, 4.0], SERIES * PER_SERIES)), "value", DICTIONARY),
    ("two-decimal gauge", block(value=np.round(WALK, 2).reshape(-1)), "value", DICTIONARY),
    ("two-decimal values held for 10 samples on average", block(value=held(np.round(WALK, 2)).reshape(-1)),
     "value", "PLAIN"),
    ("integer counters", block(value=np.cumsum(rng.integers(0, 5000, SERIES * PER_SERIES)).astype(float)),
     "value", None),  # PLAIN and byte-stream-split within 3 % of each other
    ("regular timestamps", block(), "ts", "DELTA_BINARY_PACKED"),
    ("scrape timestamps shared by every series, with jitter",
     scraped(ts=np.tile(1_700_000_000_000 + np.arange(SCRAPES) * 15_000 + rng.integers(-2, 3, SCRAPES), SCRAPES)),
     "ts", None),  # the three within 15 %: PLAIN and dictionary share one copy across series, delta a tight one
    ("one seq per batch request", scraped(), "seq", DICTIONARY),
    ("one seq per point", block(seq=np.tile(FIRST_SEQ + np.arange(PER_SERIES) * 1_000_003, SERIES)),
     "seq", "DELTA_BINARY_PACKED"),
])
def test_the_chooser_picks_the_smallest_encoding_for_typical_data(name, table, column, expected):
    """The pick is (within 2 %) the smallest of the column's candidates when the whole table is written with each,
    and for clear cases the expected one."""
    options = choose_encodings(table)
    sizes = {encoding: column_bytes(table, column, encoding, options["row_group_size"])
             for encoding in CANDIDATES[column]}
    assert sizes[chosen(options, column)] <= 1.02 * min(sizes.values()), (name, sizes)
    assert expected in (None, chosen(options, column)), (name, sizes)


def test_shadow_blocks_without_a_value_column_get_options_too():
    options = choose_encodings(block().drop_columns(["value"]))
    assert set(options["column_encoding"]) | set(options["use_dictionary"]) == {"series", "ts", "seq"}
    assert options["compression"] == "zstd" and options["compression_level"] == ZSTD_LEVEL


def edge_values() -> list[float]:
    payload_nan = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_DEAD_BEEF))[0]
    specials = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308,
                float(2**53), float(2**53 - 1), -float(2**53), float(2**53 + 2), 0.1, 1 / 3, 1e-300, 123456789.125,
                float("inf"), float("-inf"), float("nan"), payload_nan]
    noise = rng.normal(0, 1e6, 500).tolist() + rng.integers(-2**53, 2**53, 500).astype(float).tolist()
    return (specials * 20 + noise) * 2


def edge_table() -> pa.Table:
    values = edge_values()
    count = len(values)
    return pa.table({"series": [f"edge{i * 4 // count}" for i in range(count)],
                     "ts": [-2**62 + i if i % 3 else 2**62 - count + i for i in range(count)],
                     "value": pa.array(values, pa.float64()),
                     "seq": [2**63 - 1 - count + i for i in range(count)]})


def bits(values) -> list[int]:
    return [struct.unpack("<Q", struct.pack("<d", v))[0] for v in values]


@pytest.mark.parametrize("combo", list(itertools.product(*CANDIDATES.values())),
                         ids=lambda combo: "-".join(e[:5] for e in combo))
def test_every_encoding_choice_reads_back_bit_exact_in_pyarrow_and_duckdb(tmp_path, combo):
    table = edge_table()
    path = tmp_path / "block.parquet"
    pq.write_table(table, path, **writer_options(dict(zip(CANDIDATES, combo)), ZSTD_LEVEL))
    back = pq.read_table(path)
    assert back.select(["series", "ts", "seq"]).equals(table.select(["series", "ts", "seq"]))
    assert bits(back["value"].to_pylist()) == bits(table["value"].to_pylist())
    rows = duckdb.sql(f"SELECT series, ts, value, seq FROM read_parquet('{path}')").to_arrow_table()
    assert rows.select(["ts", "seq"]).equals(table.select(["ts", "seq"]))
    assert rows["series"].to_pylist() == table["series"].to_pylist()
    assert bits(rows["value"].to_pylist()) == bits(table["value"].to_pylist())


def test_files_of_long_series_runs_get_small_row_groups_and_short_ones_keep_the_default():
    def table(series_count: int, rows: int) -> pa.Table:
        return pa.table({"series": pa.array([f"s{i * series_count // rows:05d}" for i in range(rows)]).dictionary_encode(),
                         "ts": pa.array(range(rows), pa.int64()), "value": pa.array([float(i) for i in range(rows)])})
    assert choose_encodings(table(10, 50_000))["row_group_size"] == 32 * 1024  # 5,000 rows a series
    assert choose_encodings(table(100, 50_000))["row_group_size"] == 128 * 1024  # 500 rows a series
