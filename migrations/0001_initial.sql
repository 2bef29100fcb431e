-- Count catalog, version 1. Never edit once released: add 0002_… instead.

-- Published Parquet files. kind 'points' holds (series, ts, value, seq);
-- kind 'shadow' holds (series, ts, seq): older stored points that a later write replaced.
CREATE TABLE blocks (
    id          INTEGER PRIMARY KEY,
    path        TEXT    NOT NULL UNIQUE,   -- relative to DATA_DIR, e.g. time_blocks/2024-01/….parquet
    kind        TEXT    NOT NULL CHECK (kind IN ('points', 'shadow')),
    month       TEXT    NOT NULL,          -- YYYY-MM (UTC)
    min_ts      INTEGER NOT NULL,          -- ms, inclusive
    max_ts      INTEGER NOT NULL,
    min_seq     INTEGER NOT NULL,
    max_seq     INTEGER NOT NULL,
    rows        INTEGER NOT NULL,
    bytes       INTEGER NOT NULL,
    sha256      TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL
);
CREATE INDEX blocks_by_month ON blocks (month, min_ts, max_ts);

-- The series index: every series ever flushed, with its tags and time extent.
CREATE TABLE series (
    key         TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    tags        TEXT    NOT NULL,          -- JSON object
    first_ts    INTEGER NOT NULL,
    last_ts     INTEGER NOT NULL
);
CREATE INDEX series_by_name ON series (name);

-- WAL segments whose points are published in blocks. A segment listed here is ignored by readers and
-- deleted by whoever finds it; the row is removed once the file is gone.
CREATE TABLE retired_segments (
    path        TEXT    PRIMARY KEY,       -- relative to DATA_DIR, e.g. wal/1234-ab12cd34/00000001.wal
    retired_ms  INTEGER NOT NULL
);
