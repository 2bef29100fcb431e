"""LaneWorker: gunicorn's gthread worker with a second thread pool for the cluster's internal requests.

Why: a client write or query that reaches a node which does not own all of it waits, in its thread, for the
owners' answers (/cluster/write, /cluster/points…). With one pool per worker, enough concurrent clients fill every
thread of every node with such waits, and the peers' requests they wait for queue behind them: every node waits
on every other until FORWARD_TIMEOUT_SECONDS, and the clients get 503s (seen with 40 clients through nginx). Cassandra
avoids this with a separate internode port and its own stages; Count keeps one port (CLUSTER_NODES and the shipped
deployment files name one) and gives internal requests their own THREADS threads instead.

How: before a connection's request goes to a thread, the worker's event loop peeks at its first bytes (MSG_PEEK,
never consuming them) and picks the pool by the request line: `/cluster/…` and `/replicate` go to the peer pool,
everything else to the client pool. A connection whose bytes have not arrived yet waits on the poller, as gthread
already does for slow clients, so no thread is held waiting for a request line.

Invariant: an internal request never waits for a client pool thread. Internal handlers answer from this node alone,
except POST /cluster/repair (an operator's one anti-entropy round, which calls its co-owners' /cluster/digest and
/cluster/cell), so peer threads do not wait on each other in a cycle.

NOTE: this extends gthread's internals (enqueue_req, pending_conns, poller, TConn), which pyproject.toml pins to
gunicorn 27; tests/cluster/test_lanes.py fails if they change.
"""

from __future__ import annotations

import re
import selectors
import socket
import time
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

PEEK_BYTES = 24
INTERNAL_REQUEST = re.compile(rb"[A-Z]{3,7} /(cluster/|replicate[ ?])")


class LaneWorker(ThreadWorker):
    def init_process(self) -> None:
        self.peer_pool = futures.ThreadPoolExecutor(max_workers=self.cfg.threads, thread_name_prefix="count-peer")
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.peer_pool.shutdown(wait=False)

    def handle_quit(self, sig, frame) -> None:
        self.peer_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def enqueue_req(self, conn: TConn) -> None:
        head = _first_bytes(conn)
        if head is None:
            self._wait_for_request(conn)
            return
        pool = self.peer_pool if INTERNAL_REQUEST.match(head) else self.tpool
        done = pool.submit(self.handle, conn)
        done.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _wait_for_request(self, conn: TConn) -> None:
        """Park a connection with nothing to read on the poller (gthread's own pending list and timeout)."""
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


def _first_bytes(conn: TConn) -> bytes | None:
    """The start of the connection's next request: bytes the parser already read ahead, else a peek at the
    socket; b"" when the peer closed or the socket failed (the client pool answers and closes, as before);
    None when nothing has arrived yet."""
    if conn.parser is not None:
        buffered = conn.parser.unreader.buf.getvalue()
        if buffered:
            return buffered[:PEEK_BYTES]
    try:
        return conn.sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return None
    except OSError:
        return b""
