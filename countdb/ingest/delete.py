"""Deletes: DELETE /series/{series} and `countdb delete` record a tombstone; nothing is rewritten now.

Invariant: the tombstone's seq comes from the same wall-clock ns sequence as writes, so every write
acknowledged before the delete is hidden and every write received after it stays visible.
"""

from __future__ import annotations

from countdb.catalog.db import connect
from countdb.catalog.tombstones import Tombstone, add_tombstone
from countdb.datadir import DataDir
from countdb.errors import InvalidInput
from countdb.ingest.validate import check_series
from countdb.model import MAX_TIMESTAMP_MS


def delete_range(series: str, start_ms: int | None, end_ms: int | None) -> tuple[int, int]:
    """The inclusive range a delete of `series` covers (a missing bound: the whole series); InvalidInput for a
    bad series or bounds. A cluster coordinator checks this before it sends the delete to the owners."""
    check_series(series, "")
    start_ms = 0 if start_ms is None else start_ms
    end_ms = MAX_TIMESTAMP_MS if end_ms is None else end_ms
    for name, value in (("start", start_ms), ("end", end_ms)):
        if not 0 <= value <= MAX_TIMESTAMP_MS:
            raise InvalidInput(f"{name}: must be between 0 and {MAX_TIMESTAMP_MS} ms", field=name)
    if start_ms > end_ms:
        raise InvalidInput(f"start ({start_ms}) is after end ({end_ms})", field="start")
    return start_ms, end_ms


def delete_points(datadir: DataDir, series: str, start_ms: int | None, end_ms: int | None, seq: int) -> Tombstone:
    """Hide the points of `series` with start_ms <= ts <= end_ms (a missing bound: the whole series) written
    before `seq`. Durable on return; a delete already recorded (same series, range and stamp: a copy from
    another node, or a hint delivered twice) is not recorded again. Raises InvalidInput, CatalogError."""
    start_ms, end_ms = delete_range(series, start_ms, end_ms)
    catalog = connect(datadir.catalog_path)
    try:
        return add_tombstone(catalog, series, start_ms, end_ms, seq)
    finally:
        catalog.close()
