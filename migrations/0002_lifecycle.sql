-- Count catalog, version 2: deletes, compaction and retention. Never edit once released.

-- DELETE /series/{series}: points of `series` with start_ms <= ts <= end_ms and a write seq below `seq`
-- are hidden from every query; compaction removes them from blocks. A later write (larger seq) stays.
CREATE TABLE tombstones (
    id          INTEGER PRIMARY KEY,       -- grows with every delete: compaction records the last it applied
    series      TEXT    NOT NULL,          -- canonical series key
    start_ms    INTEGER NOT NULL,          -- inclusive
    end_ms      INTEGER NOT NULL,          -- inclusive
    seq         INTEGER NOT NULL,          -- wall-clock ns at the delete
    created_ms  INTEGER NOT NULL
);
CREATE INDEX tombstones_by_series ON tombstones (series, start_ms, end_ms);

-- Blocks the compactor wrote: every tombstone with id <= tombstone_mark is applied to them.
CREATE TABLE compacted_blocks (
    path            TEXT    PRIMARY KEY,
    tombstone_mark  INTEGER NOT NULL
);

-- Block files compaction or retention took out of `blocks`. A query that took its snapshot earlier may
-- still read one, so the file is deleted only after a grace period (2 × QUERY_TIMEOUT_SECONDS).
CREATE TABLE retired_blocks (
    path        TEXT    PRIMARY KEY,       -- relative to DATA_DIR
    retired_ms  INTEGER NOT NULL
);
