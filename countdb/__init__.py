"""Count: a masterless time-series store on Arrow buffers, a WAL, monthly Parquet blocks and DuckDB."""

__version__ = "0.2.0"
