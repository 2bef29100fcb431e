"""Read path: DuckDB (one connection per worker) over published blocks plus the points still in the WAL."""
