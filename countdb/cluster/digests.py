"""Comparing what two co-owners hold: digest cells (month, partition) and the rows one has that the other lacks.

Invariant: pure functions of their inputs, so the replication module's decisions can be property-tested: two
nodes holding the same points give no differing cell, and the rows pushed each way make them hold the same.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

Cell = tuple[str, int]
"""A month (YYYY-MM) and a partition of the hash space (ring.partition_of)."""

STAMP_KEYS = ["series", "ts", "seq"]


def differing_cells(mine: list[list], theirs: list[list]) -> list[Cell]:
    """Cells ([month, partition, points, digest] rows) whose points or digest differ, or that one side lacks."""
    left = {(month, partition): (points, digest) for month, partition, points, digest in mine}
    right = {(month, partition): (points, digest) for month, partition, points, digest in theirs}
    return sorted(cell for cell in left.keys() | right.keys() if left.get(cell) != right.get(cell))


def rows_missing(have: pa.Table, other: pa.Table) -> pa.Table:
    """The rows of `have` (stamped points) with no row of the same series, ts and seq in `other`."""
    have, other = _plain(have), _plain(other)
    if have.num_rows == 0 or other.num_rows == 0:
        return have
    return have.join(other.select(STAMP_KEYS), keys=STAMP_KEYS, join_type="left anti")


def stamped_before(table: pa.Table, before: int | None) -> pa.Table:
    """The rows of `table` (stamped points) stamped before `before`; all of them when None."""
    if before is None:
        return table
    return table.filter(pc.less(table["seq"], before))


def missing_tombstones(mine: list[list], theirs: list[list]) -> list[list]:
    """Tombstones ([series, start, end, seq]) in `mine` that `theirs` lacks."""
    known = {tuple(tombstone) for tombstone in theirs}
    return [tombstone for tombstone in mine if tuple(tombstone) not in known]


def _plain(table: pa.Table) -> pa.Table:
    series = table.schema.field("series").type
    if pa.types.is_dictionary(series):
        table = table.set_column(0, "series", table["series"].cast(pa.string()))
    return table
