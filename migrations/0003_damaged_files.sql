-- Count catalog, version 3: files found damaged and quarantined. Never edit once released.

-- A block found missing, truncated, corrupt or disagreeing with its catalog row is moved to
-- node_state/quarantine/ and its blocks row is moved here, in one transaction, so no reader or flush
-- uses it again. WAL segments cut short by repair are recorded here too. /health is "degraded" while
-- this table has rows; `countdb verify --acknowledge-damage` empties it.
CREATE TABLE damaged_files (
    path            TEXT    PRIMARY KEY,   -- where it was, relative to DATA_DIR
    kind            TEXT    NOT NULL,      -- 'points' | 'shadow' (a block) or 'wal' (a segment)
    problem         TEXT    NOT NULL,      -- missing | size | checksum | unreadable | rows | bad_crc | …
    detail          TEXT    NOT NULL,      -- what was found, for people
    quarantined_as  TEXT,                  -- relative to DATA_DIR; NULL when there was no file to keep
    rows            INTEGER,               -- rows the catalog listed (points no longer served), if known
    min_ts          INTEGER,               -- the time range those rows covered (ms), if known
    max_ts          INTEGER,
    detected_ms     INTEGER NOT NULL
);
