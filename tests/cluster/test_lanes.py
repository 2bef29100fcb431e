"""The peer lane of threads (countdb/api/lanes.py): with far more concurrent clients than threads, every node's client
threads wait on the other nodes, and the internal requests they wait for are still answered, so no write fails.
With one pool per worker this deadlocked the cluster until FORWARD_TIMEOUT_SECONDS and answered 503s."""

from __future__ import annotations


from countdb.api.lanes import Lane, lane_of
from support.cluster import Writers, assert_every_node_holds_exactly

CLIENTS = 24  # per node 8 clients against 1 worker of 2 client threads


def test_requests_are_told_apart_by_their_request_line():
    internal = [b"POST /cluster/write HTTP/1.1", b"GET /cluster/heartbeat HTTP/1.1", b"POST /replicate HTTP/1.1",
                b"POST /replicate?month=2026-01 HTTP/1.1"]
    fast = [b"POST /insert HTTP/1.1", b"POST /write?db=x HTTP/1.1", b"POST /api/v2/write?bucket=b HTTP/1.1",
            b"POST /api/v3/write_lp?db=x HTTP/1.1", b"POST /api/v1/write HTTP/1.1", b"GET /health HTTP/1.1",
            b"GET /ready HTTP/1.1", b"GET /metrics HTTP/1.1"]
    query = [b"GET /query/range/cluster/x HTTP/1.1", b"POST /replicated HTTP/1.1", b"GET /insert HTTP/1.1",
             b"POST /query/sql HTTP/1.1", b"GET /healthz HTTP/1.1", b"POST /api/v1/read HTTP/1.1", b"PO", b""]
    assert [lane_of(line) for line in internal] == [Lane.PEER] * len(internal)
    assert [lane_of(line) for line in fast] == [Lane.FAST] * len(fast)
    assert [lane_of(line) for line in query] == [Lane.QUERY] * len(query)


def test_many_more_clients_than_threads_fail_no_write(start_cluster):
    cluster = start_cluster(3, WORKERS="1", THREADS="2")
    with Writers([cluster.url(index % 3) for index in range(CLIENTS)], pause_seconds=0, series_prefix="lane") as writers:
        cluster.wait_until(lambda: len(writers.acknowledged) > 5_000 or len(writers.failures) > 20, 60,
                           "5,000 points written by 24 clients at once")
    assert not writers.failures, f"{len(writers.failures)} writes failed, e.g. {writers.failures[:3]}"
    assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
