"""The write path: parse → validate → WAL append → buffer → acknowledge; then flush to Parquet blocks."""
