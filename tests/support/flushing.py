"""Publishing test points as blocks through a real Flusher, without a server (unit tests of storage and queries)."""

from __future__ import annotations

from countdb.ingest.flush import Flusher
from countdb.wal.record import Columns, records_to_table


def flush(flusher: Flusher, seq: int, points: list[tuple[str, int, float]]) -> None:
    """Flush (series, ts, value) points as one write with sequence number `seq`."""
    columns = Columns([s for s, _, _ in points], [t for _, t, _ in points], [v for _, _, v in points])
    flusher.flush(records_to_table([(seq, columns)]), [])
