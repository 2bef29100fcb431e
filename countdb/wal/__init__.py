"""Write-ahead log: framed, checksummed records in per-writer segment files (format: docs/format/wal.md)."""
