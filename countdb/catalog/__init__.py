"""The SQLite catalog (series_index/catalog.sqlite): which blocks are published, which series exist."""
