"""Client sockets that can't hold a thread forever: each blocking read or write gives up after a timeout without
progress, and a thread blocked on its client lends its compute slot to another request meanwhile.

Why: gthread gives a connection a thread for the whole of a request, including the time spent reading a slow body
and writing an answer to a client that stopped reading. A few such clients used to hold every thread of a worker
(issue 14: hostile and careless connections).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger(__name__)

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
    While blocked on its client, a thread holds no compute slot (see CountWorker)."""

    timeout_seconds = 10.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.timeout_seconds)
        else:
            super().setblocking(False)

    def recv(self, size: int, flags: int = 0) -> bytes:
        try:
            return self._at_once(super().recv, size, flags)
        except BlockingIOError:
            pass
        try:
            with _waiting_on_client():
                return super().recv(size, flags)
        except TimeoutError:
            raise ConnectionResetError(errno.ECONNRESET, f"the client sent nothing for {self.timeout_seconds:.0f} s")

    def sendall(self, data, flags: int = 0) -> None:
        """socket.sendall, but the timeout is for each step of progress, not for the whole answer."""
        view = memoryview(data).cast("B")
        try:
            view = view[self._at_once(super().send, view, flags):]
        except BlockingIOError:
            pass
        if not view:
            return
        try:
            with _waiting_on_client():
                while view:
                    view = view[super().send(view, flags):]
        except TimeoutError:
            log.warning("closed a connection from %s: the client read nothing for %.0f s", _peer(self),
                        self.timeout_seconds)
            raise BrokenPipeError(errno.EPIPE, f"the client read nothing for {self.timeout_seconds:.0f} s")

    def _at_once(self, operation, *args):
        """`operation` without waiting (BlockingIOError if it would wait); the timeout is restored after."""
        timeout = self.gettimeout()
        super().settimeout(0.0)
        try:
            return operation(*args)
        finally:
            super().settimeout(timeout)


def _peer(sock: socket.socket) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "a client"
