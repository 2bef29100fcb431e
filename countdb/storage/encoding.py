"""choose_encodings: the Parquet writer options of one block, picked from its own data by trial encoding.

Invariant: every candidate is a lossless Parquet encoding of the column's own Arrow type, so the choice changes
only the bytes on disk, never a value read back (bit-exact doubles, -0.0 and NaN payloads included).
"""

from __future__ import annotations

import zlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 128 * 1024
# NOTE: pyarrow decodes a row group from its start, so a one-series query decodes on average half a row group to
# reach its rows (query/stored_series.py). Row groups of 32 Ki rows took the medium store's 8-client one-hour
# queries from 1,041 to 1,373 q/s (1.79 to 1.35 ms of CPU each) for 1.6 % more bytes (issue 4; its series hold
# ~5,000 rows per file). Where series are short (the exporter data: ~400 rows each) they cost 12 % instead, as
# zstd finds each series' PLAIN timestamps in the previous series': those files keep ROW_GROUP_ROWS.
LONG_RUN_ROW_GROUP_ROWS = 32 * 1024
LONG_RUN_ROWS = 4 * 1024  # average rows per series from which a file gets LONG_RUN_ROW_GROUP_ROWS
# NOTE: level 9 over 3 saves 3 % on exporter data, 1 % on noisy floats; choosing and writing at level 9 costs a
# flush 1.25-1.4x the CPU of the old level-3 writer (issue 5, bench/README.md).
ZSTD_LEVEL = 9
# NOTE: a flush writes at level 3 and compaction rewrites at ZSTD_LEVEL: on a 200 k-point cpu block level 3
# costs 0.043 µs/point against 0.086 and writes 1.2 % more bytes (issue 3: Arrow ingest ≥ 5 M points/s on 2 cores).
FLUSH_ZSTD_LEVEL = 3
DICTIONARY = "DICTIONARY"
# Per column, the candidates tried, in order of preference on a tie. `series` is always a dictionary: sorted by
# series, its indices are long runs, and a dictionary page stores each key once (bench/README.md, Storage encodings).
CANDIDATES = {
    "ts": ("DELTA_BINARY_PACKED", "PLAIN", DICTIONARY),
    "seq": ("DELTA_BINARY_PACKED", "PLAIN", DICTIONARY),
    "value": ("BYTE_STREAM_SPLIT", "PLAIN", DICTIONARY),
}
CANDIDATES_PER_COLUMN = 3
# NOTE: trials write whole row groups at the level the block is written at. A dictionary page is paid once per row
# group, so samples of 8 x 1 Ki rows priced dictionaries too high, and level-1 trials priced PLAIN runs of repeated
# values too high: on the medium data set's two-decimal gauges they picked PLAIN at 1.76 B/point where a dictionary
# takes 1.66, on held values a dictionary at 0.55 where PLAIN takes 0.50 (issue 17). Four whole groups pick the
# smallest of the three in every bench shape (two still picked PLAIN for those gauges: too few series). Trials at
# level 9 cost 0.1 s per 1 M-row compacted file of long series (groups of 32 Ki rows) and up to 0.5 s where series
# are short (128 Ki): the medium shapes still compact in 11-12 s per 10 M rows, the exporter data in 0.30 s, not 0.15.
SAMPLE_ROW_GROUPS = 4
REUSE_BLOCKS = 16  # blocks of one series set written with one trial's pick before the trials run again
SERIES_SETS_LIMIT = 64  # series sets whose pick an EncodingChoices remembers


def choose_encodings(table: pa.Table, zstd_level: int = ZSTD_LEVEL) -> dict:
    """Keyword arguments for pyarrow.parquet.write_table of `table` (sorted by series, ts) at `zstd_level`: for
    each column of CANDIDATES, the encoding whose compressed column chunk is smallest on a sample of the table.

    The sample is SAMPLE_ROW_GROUPS of the table's row groups, spread over it (the whole table when it is smaller),
    written as the block will be: what the encodings feed on (repeats, steps, series boundaries, one dictionary
    per row group) is all there.
    """
    group_rows = row_group_rows(table)
    sample = _sample(table, group_rows)
    columns = [column for column in CANDIDATES if column in table.column_names]
    sizes: dict[tuple[str, str], int] = {}
    for round_ in range(CANDIDATES_PER_COLUMN):  # one trial write tries one candidate of every column
        picks = {column: CANDIDATES[column][round_] for column in columns}
        for column, size in _column_chunk_bytes(sample, writer_options(picks, zstd_level, group_rows)).items():
            if column in picks:
                sizes[column, picks[column]] = size
    best = {column: min(CANDIDATES[column], key=lambda encoding, c=column: sizes[c, encoding]) for column in columns}
    return writer_options(best, zstd_level, group_rows)


def row_group_rows(table: pa.Table) -> int:
    """LONG_RUN_ROW_GROUP_ROWS when the table's series hold LONG_RUN_ROWS rows each on average, else ROW_GROUP_ROWS."""
    if not table.num_rows:
        return ROW_GROUP_ROWS
    column = table["series"]
    if pa.types.is_dictionary(column.type):  # count_distinct has no dictionary kernel: count one dictionary's indices
        column = pa.chunked_array([chunk.indices for chunk in table.unify_dictionaries()["series"].chunks])
    series = pc.count_distinct(column).as_py()
    return LONG_RUN_ROW_GROUP_ROWS if table.num_rows / series >= LONG_RUN_ROWS else ROW_GROUP_ROWS


class EncodingChoices:
    """choose_encodings at `zstd_level`, its pick reused for the next blocks of the same series set and columns.

    NOTE: a node's flushes write the same series, sent by the same clients, block after block, and the trials
    cost 0.02 µs/point of a 100 k-row Arrow request (issue 3). A stale pick costs bytes, never a value read back:
    every candidate is lossless. Not thread-safe: one per Flusher."""

    def __init__(self, zstd_level: int):
        self.zstd_level = zstd_level
        self._picks: dict[tuple, tuple[dict, int]] = {}

    def options(self, table: pa.Table) -> dict:
        key = _series_set(table)
        options, uses = self._picks.get(key, (None, REUSE_BLOCKS))
        if uses >= REUSE_BLOCKS:
            options, uses = choose_encodings(table, self.zstd_level), 0
            if len(self._picks) >= SERIES_SETS_LIMIT:
                self._picks.clear()
        self._picks[key] = (options, uses + 1)
        return {**options, "row_group_size": row_group_rows(table)}  # the table's own, not the cached pick's


def _series_set(table: pa.Table) -> tuple:
    """A fingerprint of the table's columns and series dictionary (CRC of its bytes): equal sets, equal prints."""
    series = table["series"]
    if not pa.types.is_dictionary(series.type) or series.num_chunks == 0:
        return tuple(table.column_names), None
    dictionary = series.chunk(0).dictionary
    checksum = 0
    for buffer in dictionary.buffers()[1:]:
        checksum = zlib.crc32(buffer, checksum) if buffer is not None else checksum
    return tuple(table.column_names), len(dictionary), dictionary.offset, checksum


def writer_options(encodings: dict[str, str], zstd_level: int, row_group_size: int = ROW_GROUP_ROWS) -> dict:
    """write_table options for the given {column: encoding or DICTIONARY}; `series` is dictionary-encoded."""
    dictionary = ["series"] + [column for column, encoding in encodings.items() if encoding == DICTIONARY]
    return dict(compression="zstd", compression_level=zstd_level, use_dictionary=dictionary,
                column_encoding={c: e for c, e in encodings.items() if e != DICTIONARY},
                row_group_size=row_group_size, write_statistics=True,
                sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)])


def _sample(table: pa.Table, group_rows: int) -> pa.Table:
    groups = -(-table.num_rows // group_rows)
    if groups <= SAMPLE_ROW_GROUPS:
        return table
    starts = [i * groups // SAMPLE_ROW_GROUPS * group_rows for i in range(SAMPLE_ROW_GROUPS)]  # whole groups
    return pa.concat_tables([table.slice(start, group_rows) for start in starts])


def _column_chunk_bytes(table: pa.Table, options: dict) -> dict[str, int]:
    """Compressed bytes of each column when `table` is written in memory with `options`."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    metadata = pq.read_metadata(pa.BufferReader(sink.getvalue()))
    out: dict[str, int] = {}
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            out[column.path_in_schema] = out.get(column.path_in_schema, 0) + column.total_compressed_size
    return out
