"""The peer thread pool (countdb/api/lanes.py): with far more concurrent clients than threads, every node's client
threads wait on the other nodes, and the internal requests they wait for are still answered, so no write fails.
With one pool per worker this deadlocked the cluster until FORWARD_TIMEOUT_SECONDS and answered 503s."""

from __future__ import annotations

import socket

from countdb.api.lanes import INTERNAL_REQUEST, _first_bytes
from gunicorn.workers.gthread import TConn
from support.cluster import Writers, assert_every_node_holds_exactly

CLIENTS = 24  # per node 8 clients against 1 worker of 2 client threads


class _Cfg:
    is_ssl = False


def test_requests_are_told_apart_by_their_request_line():
    internal = [b"POST /cluster/write HTTP/1.1", b"GET /cluster/heartbeat HTTP/1.1", b"POST /replicate HTTP/1.1",
                b"POST /replicate?month=2026-01 HTTP/1.1"]
    clients = [b"POST /insert HTTP/1.1", b"GET /query/range/cluster/x HTTP/1.1", b"POST /replicated HTTP/1.1",
               b"GET /health HTTP/1.1", b"PO", b""]
    assert all(INTERNAL_REQUEST.match(line) for line in internal)
    assert not any(INTERNAL_REQUEST.match(line) for line in clients)


def test_the_first_bytes_are_peeked_not_consumed():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        conn = TConn(_Cfg(), ours, ("peer", 0), ("us", 0))
        assert _first_bytes(conn) is None  # nothing sent yet: the worker parks it on the poller
        theirs.sendall(b"POST /cluster/write HTTP/1.1\r\nHost: x\r\n\r\n")
        assert INTERNAL_REQUEST.match(_first_bytes(conn))
        assert ours.recv(100).startswith(b"POST /cluster/write")  # still there for the parser
        theirs.close()
        assert _first_bytes(conn) == b""


def test_many_more_clients_than_threads_fail_no_write(start_cluster):
    cluster = start_cluster(3, WORKERS="1", THREADS="2")
    with Writers([cluster.url(index % 3) for index in range(CLIENTS)], pause_seconds=0, series_prefix="lane") as writers:
        cluster.wait_until(lambda: len(writers.acknowledged) > 5_000 or len(writers.failures) > 20, 60,
                           "5,000 points written by 24 clients at once")
    assert not writers.failures, f"{len(writers.failures)} writes failed, e.g. {writers.failures[:3]}"
    assert_every_node_holds_exactly(cluster, writers, [0, 1, 2])
