"""Client sockets that can't hold a thread forever: each blocking read or write gives up after a timeout without
progress, and a thread blocked on its client lends its compute slot to another request meanwhile.

Why: gthread gives a connection a thread for the whole of a request, including the time spent reading a slow body
and writing an answer to a client that stopped reading. A few such clients used to hold every thread of a worker
(issue 14: hostile and careless connections).
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)
MERGED_BYTES_MAX = 64 * 1024  # a body up to this size is copied behind its held head, to leave in one send

compute_slot = threading.local()  # .semaphore: the query lane's compute slots, held by the thread running a request


@contextmanager
def _waiting_on_client() -> Iterator[None]:
    """While a query-lane thread waits for its client, it gives its compute slot to another request."""
    semaphore = getattr(compute_slot, "semaphore", None)
    if semaphore is None:
        yield
        return
    semaphore.release()
    try:
        yield
    finally:
        semaphore.acquire()


class TimedSocket(socket.socket):
    """A client socket whose blocking mode is a timeout: a read or write that makes no progress for
    `timeout_seconds` fails as a reset/broken connection (which gunicorn closes quietly), freeing its thread.
    While blocked on its client, a thread holds no compute slot (see CountWorker).

    The descriptor is non-blocking for the socket's whole life; blocking, non-blocking and timeouts are this
    object's own state, and a blocking call waits with poll() only when the kernel says it would block.
    Why: gunicorn switches a connection between blocking and non-blocking several times per request, and
    CPython polls before every call on a socket with a timeout. Each of those is a system call that releases
    the GIL, and a worker's threads then queue for it again: 13 ioctl calls per single-point insert, measured
    (issue 17, item 1)."""

    timeout_seconds = 10.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        super().setblocking(False)
        self._wait_seconds: float = self.timeout_seconds  # 0.0: the caller asked for a non-blocking socket
        self._holding = False  # the next sendall is a response's head, to be sent with what follows it
        self._held = b""

    def setblocking(self, flag: bool) -> None:
        self._wait_seconds = self.timeout_seconds if flag else 0.0

    def settimeout(self, value: float | None) -> None:
        self._wait_seconds = self.timeout_seconds if value is None else max(0.0, float(value))

    def gettimeout(self) -> float:
        return self._wait_seconds

    def recv(self, size: int, flags: int = 0) -> bytes:
        return self._blocking(super().recv, select.POLLIN, self._silent, size, flags)

    def send(self, data, flags: int = 0) -> int:
        return self._blocking(super().send, select.POLLOUT, self._stalled, data, flags)

    def _blocking(self, operation, event: int, failure, *args):
        """`operation(*args)` on the non-blocking descriptor; in blocking mode, wait for `event` and try again
        while the kernel says it would block, until a wait without progress raises `failure()`."""
        while True:
            try:
                return operation(*args)
            except BlockingIOError:
                if not self._wait_seconds:
                    raise
            if not self._wait_for(event):
                raise failure()

    def sendall(self, data, flags: int = 0) -> None:
        """socket.sendall, but the timeout is for each step of progress, not for the whole answer."""
        if self._holding:
            self._holding, self._held = False, bytes(data)
            return
        if self._held:
            held, self._held = self._held, b""
            if len(data) <= MERGED_BYTES_MAX:
                data = held + data
            else:
                self.sendall(held, flags)
        view = memoryview(data).cast("B")
        while view:
            view = view[self.send(view, flags):]

    def hold_response_head(self) -> None:
        """Keep the next sendall's bytes to send them with the next one. gunicorn sends a response's head (its
        status line and headers) in a call of its own, then the body: held, a small answer leaves in one
        system call and one TCP segment instead of two (issue 17, item 1). The caller sends what is still held
        with send_held() once the request is answered (an answer with no body)."""
        self._holding, self._held = True, b""

    def send_held(self) -> None:
        self._holding = False
        if self._held:
            held, self._held = self._held, b""
            self.sendall(held)

    def _wait_for(self, event: int) -> bool:
        """Wait until the socket is ready for `event`, at most the timeout; False if it was not. The thread
        lends its compute slot meanwhile."""
        poller = select.poll()
        poller.register(self, event)
        with _waiting_on_client():
            return bool(poller.poll(self._wait_seconds * 1000))

    def _silent(self) -> ConnectionResetError:
        return ConnectionResetError(errno.ECONNRESET, f"the client sent nothing for {self._wait_seconds:.0f} s")

    def _stalled(self) -> BrokenPipeError:
        log.warning("closed a connection from %s: the client read nothing for %.0f s", _peer(self),
                    self._wait_seconds)
        return BrokenPipeError(errno.EPIPE, f"the client read nothing for {self._wait_seconds:.0f} s")


def _peer(sock: socket.socket) -> str:
    try:
        address = sock.getpeername()
    except OSError:
        return "a client"
    return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "a local client"
