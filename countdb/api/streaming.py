"""cut_on_error: what a streamed (chunked) answer does when its result fails after the status line went out.

Invariant: a client never receives a shorter result that looks complete. The connection is cut before the
closing chunk, so HTTP clients report a truncated transfer, and the server logs one line naming the request
and the reason (a limit or time-out the query hit), not a traceback.
"""

from __future__ import annotations

import logging
import socket
from typing import Iterable, Iterator

from countdb.errors import CountError

log = logging.getLogger(__name__)


def cut_on_error(chunks: Iterable[bytes], connection: socket.socket | None, request_id: str) -> Iterator[bytes]:
    """`chunks`, until one fails with a CountError: then log it and shut `connection` (gunicorn's socket) down,
    so gunicorn's closing chunk meets a closed socket, which it ignores. Without a socket (another WSGI server),
    the error goes on up: every server cuts a response whose body raised."""
    try:
        yield from chunks
    except CountError as error:
        log.warning("request %s: streamed answer cut short: %s", request_id, error)
        if connection is None:
            raise
        connection.shutdown(socket.SHUT_RDWR)
