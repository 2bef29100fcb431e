"""Bytes per point on disk after a flush, next to plain zstd Parquet of the very same points.

Why two baselines: pyarrow's defaults in arrival order (time-major) are what a naive writer gets, sorted by (series,
ts) what a columnar layout usually gets; neither always wins, so the target is judged against the smaller file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.dataset import Points


def parquet_footprint(data_dir: Path) -> dict:
    """Files, bytes and rows of DATA_DIR/time_blocks/*/*.parquet, per month folder too; and per column, the
    compressed bytes and the data encodings seen (what each column costs Count; the rest is footers)."""
    files = sorted((data_dir / "time_blocks").glob("*/*.parquet"))
    months: dict[str, dict] = {}
    columns: dict[str, dict] = {}
    total_bytes = total_rows = 0
    for path in files:
        metadata = pq.ParquetFile(path).metadata
        size, rows = path.stat().st_size, metadata.num_rows
        month = months.setdefault(path.parent.name, {"files": 0, "bytes": 0, "rows": 0})
        month["files"] += 1
        month["bytes"] += size
        month["rows"] += rows
        total_bytes, total_rows = total_bytes + size, total_rows + rows
        for group in range(metadata.num_row_groups):
            for index in range(metadata.num_columns):
                chunk = metadata.row_group(group).column(index)
                column = columns.setdefault(chunk.path_in_schema, {"bytes": 0, "encodings": {}})
                column["bytes"] += chunk.total_compressed_size
                encoding = _data_encoding(chunk.encodings)
                column["encodings"][encoding] = column["encodings"].get(encoding, 0) + 1
    return {"files": len(files), "bytes": total_bytes, "rows": total_rows, "months": months, "columns": columns}


def _data_encoding(encodings: tuple[str, ...]) -> str:
    """The data encoding of a column chunk: RLE alone is only its levels; RLE_DICTIONARY means a dictionary."""
    if "RLE_DICTIONARY" in encodings or "PLAIN_DICTIONARY" in encodings:
        return "dictionary"
    data = [e for e in encodings if e != "RLE"]
    return data[0] if data else "RLE"


def storage_result(data_dir: Path, points: Points, written: int | None = None, baseline: dict | None = None) -> dict:
    """Count's bytes/point (file bytes / points acknowledged) against both zstd Parquet baselines of `points`
    (`baseline`: zstd_baseline(points) when already made)."""
    footprint = parquet_footprint(data_dir)
    baseline = baseline or zstd_baseline(points)
    written = len(points) if written is None else written
    count_bpp = footprint["bytes"] / written if written else 0.0
    best = min(baseline, key=lambda order: baseline[order]["bytes"])
    reference = baseline[best]["bytes_per_point"]
    return {
        "points": written, "points_in_data_set": len(points), "series": len(points.series.keys),
        "parquet_files": footprint["files"], "parquet_bytes": footprint["bytes"],
        "stored_rows": footprint["rows"], "months": footprint["months"],
        "bytes_per_point": round(count_bpp, 4),
        "column_bytes_per_point": {name: round(column["bytes"] / written, 4) if written else 0.0
                                   for name, column in footprint["columns"].items()},
        "column_encodings": {name: column["encodings"] for name, column in footprint["columns"].items()},
        "zstd_parquet": baseline,
        "zstd_reference": best,
        "reduction_vs_zstd": round(1 - count_bpp / reference, 4) if reference and count_bpp else None,
    }


def compacted_result(data_dir: Path, points: Points, written: int, flushed: dict) -> dict:
    """`countdb compact` on the stopped node's DATA_DIR (it deletes the replaced files at once), then the same
    figures as storage_result over what is left, against the baseline of `flushed` (the storage_result taken before
    compaction), plus how long compaction took."""
    done = subprocess.run([sys.executable, "-m", "countdb", "compact"], capture_output=True, text=True, check=True,
                          env={**os.environ, "DATA_DIR": str(data_dir)})
    report = json.loads(done.stdout)
    return {**storage_result(data_dir, points, written, flushed["zstd_parquet"]),
            "compaction_seconds": report["seconds"]}


def zstd_baseline(points: Points) -> dict:
    """pyarrow.parquet.write_table(compression="zstd"), all other options default, columns series/ts/value.

    `series` is handed over dictionary-encoded, which is how the Parquet writer stores strings by default anyway;
    as plain strings it would need ~19 GB at the large scale.
    """
    keys = pa.array(points.series.keys, pa.string())
    rank = np.argsort(np.argsort(np.array(points.series.keys, dtype=object)))  # each key's position when sorted
    out = {}
    with tempfile.TemporaryDirectory(prefix="count-bench-zstd-") as tmp:
        for name, order in (("arrival_order", None), ("sorted", np.lexsort((points.ts, rank[points.idx])))):
            idx, ts, value = ((points.idx, points.ts, points.value) if order is None
                              else (points.idx[order], points.ts[order], points.value[order]))
            table = pa.table({"series": pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32()), keys),
                              "ts": pa.array(ts, pa.int64()), "value": pa.array(value, pa.float64())})
            path = Path(tmp) / f"{name}.parquet"
            pq.write_table(table, path, compression="zstd")
            size = path.stat().st_size
            out[name] = {"bytes": size, "bytes_per_point": round(size / max(1, len(points)), 4)}
    return out
