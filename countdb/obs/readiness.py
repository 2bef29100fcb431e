"""How a child process of count-server (Arrow Flight, the cluster agent) tells the gunicorn master it is ready.

Invariant: the master starts serving only after each child wrote one line ("<port>\\n", 0 without a port) to the
pipe named by READY_FD_VARIABLE (api/child_process.py reads it).
"""

from __future__ import annotations

import os

READY_FD_VARIABLE = "COUNT_READY_FD"


def announce_ready(port: int) -> None:
    """Write the ready line to the master's pipe, if this process was started with one."""
    fd = os.environ.get(READY_FD_VARIABLE)
    if fd:
        os.write(int(fd), f"{port}\n".encode())
        os.close(int(fd))
