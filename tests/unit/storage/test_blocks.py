"""write_block: a durable file whose row groups each carry only their own series keys."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from countdb.model import YearMonth
from countdb.storage.blocks import write_block
from countdb.storage.encoding import choose_encodings
from countdb.storage.paths import BlockPath

SERIES, PER_SERIES = 300, 500


def sorted_block() -> pa.Table:
    """SERIES series x PER_SERIES points, series dictionary-encoded over every key (as a flush holds them)."""
    keys = pa.array([f"cpu.usage_user,host=host_{i:04d},region=eu-west-1,rack={i % 97}" for i in range(SERIES)])
    rows = SERIES * PER_SERIES
    return pa.table({
        "series": pa.DictionaryArray.from_arrays(pa.array([i // PER_SERIES for i in range(rows)], pa.int32()), keys),
        "ts": pa.array([1_700_000_000_000 + (i % PER_SERIES) * 10_000 for i in range(rows)], pa.int64()),
        "value": pa.array([float(i % 1000) for i in range(rows)]),
        "seq": pa.array([1_795_000_000_000_000_000] * rows, pa.int64())})


def test_each_row_group_stores_only_the_series_keys_its_rows_use(tmp_path):
    table = sorted_block()
    record = write_block(tmp_path, BlockPath.new(YearMonth(2023, 11), "points", 1), table,
                         {**choose_encodings(table), "row_group_size": 10_000})
    file = pq.ParquetFile(tmp_path / record.path, read_dictionary=["series"])
    assert file.metadata.num_row_groups == 15 and record.rows == SERIES * PER_SERIES
    for group in range(file.metadata.num_row_groups):
        series = file.read_row_group(group, columns=["series"])["series"].chunk(0)
        assert len(series.dictionary) == pc.count_distinct(series.indices).as_py() == 10_000 // PER_SERIES
    back = pq.read_table(tmp_path / record.path)
    assert back["series"].cast(pa.string()).equals(table["series"].cast(pa.string()))
    assert back.select(["ts", "value", "seq"]).equals(table.select(["ts", "value", "seq"]))
