"""Count's benchmark: a seeded cpu-only data set in every wire format, a real server, targets (bench/README.md)."""
