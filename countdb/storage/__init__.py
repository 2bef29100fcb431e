"""Parquet time blocks under time_blocks/YYYY-MM/: naming, durable publication, encoding choices."""
