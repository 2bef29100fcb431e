"""What a Parquet row group's column statistics say about its values: read alike by the flush's timestamp check
(countdb/ingest) and the one-series reader (countdb/query), which may not import each other.

Absent statistics (a writer that kept none, or dropped them as too long) say nothing, so every reader must treat
such a row group as possibly holding anything.
"""

from __future__ import annotations

import pyarrow.parquet as pq


def min_max(statistics: pq.Statistics | None) -> tuple:
    """(min, max) from `statistics`, or (None, None) when they say nothing."""
    if statistics is None or not statistics.has_min_max:
        return None, None
    return statistics.min, statistics.max


def row_groups_reaching(metadata: pq.FileMetaData, column: str, low, high) -> list[int]:
    """The row groups whose `column` statistics overlap [low, high], and those that say nothing."""
    index = metadata.schema.names.index(column)
    reaching = []
    for group in range(metadata.num_row_groups):
        smallest, largest = min_max(metadata.row_group(group).column(index).statistics)
        if smallest is None or (smallest <= high and largest >= low):
            reaching.append(group)
    return reaching
