"""The node's port, held by the master so each gunicorn worker can listen on it with its own SO_REUSEPORT socket.

Invariant: the held socket is bound, never listening, so the kernel balances new connections over the workers'
listening sockets only (a listening socket nobody accepts from would strand its share of the connections).
"""

from __future__ import annotations

import socket


def hold_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT and not listening; port 0 picks a free port.

    The caller keeps it open for the node's lifetime: it reserves the port against other programs, while
    sockets of the same user with SO_REUSEPORT (the workers') may bind it too. Raises OSError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held = socket.socket(family, socket.SOCK_STREAM)
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((host, port))
    except OSError:
        held.close()
        raise
    return held


def address_of(held: socket.socket) -> str:
    """host:port (IPv6 hosts in brackets) of a bound socket, as gunicorn's `bind` and COUNT_READY_FILE take it."""
    host, port = held.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
