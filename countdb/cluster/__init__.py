"""The cluster: placement (ring), membership, replicated writes with hinted handoff, reads across nodes, and
the replication module that repairs replicas with Parquet segments. Beside ingest and query, never under them:
api/ wires the three together."""
