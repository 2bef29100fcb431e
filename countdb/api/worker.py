"""CountWorker: gunicorn's gthread worker with request buffering and three lanes of threads, so idle, slow and
stalled clients cost no thread and no kind of request waits behind another.

A connection is read in the worker's event loop (non-blocking) until its request head and its whole body are
in (bodies up to MAX_BODY_BYTES with a Content-Length); only then does a thread take it, and parses it from
memory. Without a whole head within CLIENT_TIMEOUT_SECONDS, or a body arriving at less than MIN_BODY_RATE after
that, the connection is closed. A thread's own socket reads and writes give up after CLIENT_TIMEOUT_SECONDS
without progress (countdb/api/client_socket.py), so no client holds a thread for longer. The request line
picks the thread pool (countdb/api/lanes.py): the cluster's internal requests, writes and probes, and queries
each have their own.

Invariant: the bodies one worker has admitted (being received, or handed to a thread and not yet answered) add
up to at most `buffer_limit_bytes`. A request whose body is not all in yet is admitted only when its whole size
fits beside the others (or when none is admitted: progress), else it waits, unread beyond its first read, and TCP
holds its client back until answers free the room. Requests that arrived whole in their first read need no room.

NOTE: this relies on gunicorn's gthread internals (TConn, poller, keepalived_conns, enqueue_req, finish_request,
murder_pending), which pyproject.toml pins to gunicorn 27; tests/server/test_hostile_connections.py and
tests/cluster/test_lanes.py fail if they change.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import threading
import time
from collections import deque
from concurrent import futures
from dataclasses import dataclass, field
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

from countdb.api.client_socket import TimedSocket, compute_slot
from countdb.api.lanes import Lane, lane_of
from countdb.config import Settings

READ_BYTES = 256 * 1024
MAX_HEAD_BYTES = 64 * 1024  # a head still unfinished past this goes to gunicorn's parser, which refuses it
MIN_BODY_RATE = 64 * 1024  # bytes/s a body must average once its head is in
LINGER_SECONDS = 2.0  # gunicorn's close_graceful timeout
STALLED_CLIENTS_MAX = 64  # query-lane threads per worker that may wait on clients beyond the THREADS computing
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:", re.IGNORECASE | re.MULTILINE)
_EXPECT_CONTINUE = re.compile(rb"^expect[ \t]*:[ \t]*100-continue", re.IGNORECASE | re.MULTILINE)


@dataclass(eq=False)  # NOTE: compared by identity, not by the bytes received
class Arrival:
    """A connection whose request is being received in the event loop."""

    conn: TConn
    deadline: float
    data: bytearray = field(default_factory=bytearray)
    head_end: int = -1  # index just past the head's blank line, once seen
    wanted: int = -1  # bytes to buffer (head + body) before a thread takes it, once known
    expects_continue: bool = False  # the client waits for "100 Continue" before it sends the body
    room: int = 0  # bytes of buffer_limit_bytes admitted for it (its whole size), until it is answered


class CountWorker(ThreadWorker):
    """gthread with request buffering (see the module docstring). Settings come from the environment, like
    every other part of Count."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        settings = Settings.from_env()
        self.client_timeout_seconds = settings.client_timeout_seconds
        self.max_body_bytes = settings.max_body_bytes
        self.buffer_limit_bytes = max(64 * 2**20, 4 * settings.max_body_bytes)
        self.arrivals: dict[TConn, Arrival] = {}
        self.waiting: deque[Arrival] = deque()  # not admitted yet, oldest first
        self.held: dict[TConn, int] = {}  # room of each connection handed to a thread
        self.lanes: dict[TConn, Lane] = {}  # the lane of each connection's request, handed over to a thread
        self.pools: dict[Lane, futures.ThreadPoolExecutor] = {}
        self.lingering: deque[tuple[float, TConn]] = deque()  # (close at, connection), oldest first
        self.admitted_bytes = 0
        TimedSocket.timeout_seconds = settings.client_timeout_seconds

    def init_process(self) -> None:
        self.pools = {lane: futures.ThreadPoolExecutor(self.cfg.threads, thread_name_prefix=f"count-{lane.value}")
                      for lane in (Lane.PEER, Lane.FAST)}
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._shut_lanes()

    def handle_quit(self, sig, frame) -> None:
        self._shut_lanes()
        super().handle_quit(sig, frame)

    def _shut_lanes(self) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=False)

    def get_thread_pool(self) -> futures.ThreadPoolExecutor:
        """The query lane: THREADS compute slots, plus threads for requests waiting on a stalled client."""
        self.compute_slots = threading.Semaphore(self.cfg.threads)
        return futures.ThreadPoolExecutor(max_workers=self.cfg.threads + STALLED_CLIENTS_MAX)

    def enqueue_req(self, conn: TConn) -> None:
        """Each request to its lane's threads (countdb/api/lanes.py). A pipelined request that gunicorn's parser
        read ahead comes here straight from finish_request: its lane is read from the parser's buffer."""
        lane = self.lanes.pop(conn, None) or _buffered_lane(conn)
        if lane is Lane.QUERY:
            future = self.tpool.submit(self._handle_in_slot, conn)
        else:
            future = self.pools[lane].submit(self._handle_with_head_held, conn)
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def _handle_in_slot(self, conn: TConn):
        with self.compute_slots:
            compute_slot.semaphore = self.compute_slots
            try:
                return self._handle_with_head_held(conn)
            finally:
                compute_slot.semaphore = None

    def _handle_with_head_held(self, conn: TConn):
        """handle(), with the answer's head sent together with its body (TimedSocket.hold_response_head)."""
        sock = conn.sock
        if not isinstance(sock, TimedSocket):  # TLS: gunicorn's own socket
            return self.handle(conn)
        sock.hold_response_head()
        try:
            return self.handle(conn)
        finally:
            try:
                sock.send_held()
            except OSError:
                pass  # the client is gone: handle() saw it too, or the next read will

    # ---- connections come in -----------------------------------------------------------------------------

    def accept(self, listener) -> None:
        try:
            client, address = listener.accept()
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        if self.cfg.is_ssl:  # TLS is nginx's job; a TLS listener keeps gunicorn's own handling
            self.enqueue_req(TConn(self.cfg, client, address, listener.getsockname()))
            return
        timed = TimedSocket(client.family, client.type, client.proto, fileno=client.detach())
        self._receive(TConn(self.cfg, timed, address, listener.getsockname()))

    def on_client_socket_readable(self, conn: TConn, client) -> None:
        """A kept-alive connection sends its next request: receive it in the loop too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._receive(conn)

    def _receive(self, conn: TConn) -> None:
        arrival = Arrival(conn, time.monotonic() + self.client_timeout_seconds)
        self.arrivals[conn] = arrival
        conn.sock.setblocking(False)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, arrival))

    def _on_readable(self, arrival: Arrival, _client) -> None:
        try:
            chunk = arrival.conn.sock.recv(READ_BYTES if arrival.room else MAX_HEAD_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(arrival)
            return
        arrival.data += chunk
        if arrival.head_end < 0:
            self._read_head(arrival)
            if arrival.wanted > len(arrival.data) and not self._admit(arrival):
                self.poller.unregister(arrival.conn.sock)
                self.waiting.append(arrival)
                return
        if arrival.room:
            _drain_into(arrival)
        if arrival.wanted >= 0 and len(arrival.data) >= arrival.wanted:
            self._hand_over(arrival)

    def _read_head(self, arrival: Arrival) -> None:
        end = arrival.data.find(b"\r\n\r\n")
        if end < 0:
            if len(arrival.data) > MAX_HEAD_BYTES:
                arrival.wanted = 0  # gunicorn's parser answers it
            return
        arrival.head_end = end + 4
        head = bytes(arrival.data[:arrival.head_end])
        lengths = _CONTENT_LENGTH.findall(head)
        if _CHUNKED.search(head) or len(lengths) > 1:
            arrival.wanted = 0  # chunked, or odd: a thread reads it, under TimedSocket's timeout
            return
        length = int(lengths[0]) if lengths else 0
        if length > self.max_body_bytes:
            arrival.wanted = 0  # refused (413) from its Content-Length: the body is never read
            return
        arrival.expects_continue = bool(length and _EXPECT_CONTINUE.search(head))
        arrival.wanted = arrival.head_end + length

    def _admit(self, arrival: Arrival) -> bool:
        """Make room for the whole of `arrival` if it fits (or if nothing else is admitted); start its body's
        clock, and ask for its body if the client waits to be asked."""
        if self.admitted_bytes and self.admitted_bytes + arrival.wanted > self.buffer_limit_bytes:
            return False
        arrival.room = arrival.wanted
        self.admitted_bytes += arrival.room
        arrival.deadline = time.monotonic() + self.client_timeout_seconds + arrival.wanted / MIN_BODY_RATE
        if arrival.expects_continue:
            _try_send(arrival.conn.sock, b"HTTP/1.1 100 Continue\r\n\r\n")  # the body comes to the loop too
        return True

    def _hand_over(self, arrival: Arrival) -> None:
        conn = arrival.conn
        self.poller.unregister(conn.sock)
        del self.arrivals[conn]
        self.held[conn] = arrival.room
        conn.data_ready = True
        self.lanes[conn] = lane_of(arrival.data)
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(arrival.data)
        self.enqueue_req(conn)

    def finish_request(self, conn: TConn, fs) -> None:
        self.admitted_bytes -= self.held.pop(conn, 0)
        if fs.cancelled() or fs.exception() is not None or not fs.result():
            self._linger(conn)
        else:
            super().finish_request(conn, fs)
        while self.waiting and self._admit(self.waiting[0]):
            arrival = self.waiting.popleft()
            self.poller.register(arrival.conn.sock, selectors.EVENT_READ, partial(self._on_readable, arrival))

    # ---- slow or gone ------------------------------------------------------------------------------------

    def murder_pending(self) -> None:
        """Also close arrivals past their deadline, and every arrival once the worker stops."""
        super().murder_pending()
        now = time.monotonic()
        while self.lingering and (self.lingering[0][0] <= now or not self.alive):
            self._close_lingering(self.lingering.popleft()[1])
        waiting = {id(arrival) for arrival in self.waiting}  # their clock starts once admitted
        for arrival in [a for a in self.arrivals.values() if a.deadline <= now or not self.alive]:
            if id(arrival) in waiting and self.alive:
                continue
            if arrival.data:
                _try_send(arrival.conn.sock, b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                             b"Content-Length: 0\r\n\r\n")
            self._drop(arrival)

    def _linger(self, conn: TConn) -> None:
        """Close a finished connection the way gunicorn's close_graceful does (FIN first, then read what the
        client still sends for up to LINGER_SECONDS, so unread bytes don't turn the close into a reset), but
        in the event loop: gunicorn lingers in the loop's own thread, which stalls every other connection for
        up to 2 s per client that keeps its end open (issue 14: clients that stop reading)."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, ValueError, KeyError):
            self.nr_conns -= 1
            conn.close()
            return
        self.lingering.append((time.monotonic() + LINGER_SECONDS, conn))

    def _drain(self, conn: TConn, _client) -> None:
        try:
            if conn.sock.recv(READ_BYTES):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_lingering(conn)

    def _close_lingering(self, conn: TConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            return  # closed already
        self.nr_conns -= 1
        conn.close()

    def _drop(self, arrival: Arrival) -> None:
        conn = arrival.conn
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.arrivals.pop(conn, None)
        if arrival in self.waiting:  # a stopping worker drops those too
            self.waiting.remove(arrival)
        self.admitted_bytes -= arrival.room
        arrival.room = 0
        self.nr_conns -= 1
        conn.close()


def _drain_into(arrival: Arrival) -> None:
    """Read what the socket holds of an admitted body now, up to its end: one wake-up of the event loop (and one
    turn at the GIL, which the threads parsing other requests hold most of the time) per burst, not per recv."""
    while len(arrival.data) < arrival.wanted:
        try:
            chunk = arrival.conn.sock.recv(min(READ_BYTES, arrival.wanted - len(arrival.data)))
        except OSError:
            return  # BlockingIOError: nothing more for now; a failure shows at the next recv
        if not chunk:
            return
        arrival.data += chunk


def _try_send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError:
        pass


def _buffered_lane(conn: TConn) -> Lane:
    """The lane of the request gunicorn's parser already holds the start of (the query lane if none)."""
    return lane_of(conn.parser.unreader.buf.getvalue()) if conn.parser is not None else Lane.QUERY
