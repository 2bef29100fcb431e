"""bench/storage.py's per-column footprint: every byte of a block is either a column chunk or footer, and each
column chunk's encoding is named as docs/format/blocks.md names it."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pyarrow as pa

from countdb.model import YearMonth
from countdb.storage.blocks import write_block
from countdb.storage.paths import BlockPath

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # `bench` is a folder of the repo, not a package
from bench.storage import parquet_footprint  # noqa: E402


def test_column_bytes_and_encodings_of_written_blocks(tmp_path):
    rows, rnd = 3000, random.Random(3)
    table = pa.table({"series": [f"s{i // 1000}" for i in range(rows)],
                      "ts": [1_640_995_200_000 + (i % 1000) * 10_000 for i in range(rows)],
                      "value": [rnd.choice([0.0, 1.5, 2.0, 4.0]) for _ in range(rows)],  # a dictionary
                      "seq": [7] * rows})
    for max_seq in (7, 8):
        write_block(tmp_path, BlockPath.new(YearMonth(2022, 1), "points", max_seq), table)
    footprint = parquet_footprint(tmp_path)
    columns = footprint["columns"]
    assert footprint["files"] == 2 and footprint["rows"] == 2 * rows
    assert set(columns) == {"series", "ts", "value", "seq"}
    assert 0 < sum(column["bytes"] for column in columns.values()) < footprint["bytes"]
    assert columns["series"]["encodings"] == {"dictionary": 2}
    assert columns["value"]["encodings"] == {"dictionary": 2}
    assert columns["ts"]["encodings"] == {"DELTA_BINARY_PACKED": 2}
