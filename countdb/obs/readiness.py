"""The life of a child process of count-server (Arrow Flight, the compactor, the cluster agent): it tells the
gunicorn master it is ready, and it stops on SIGTERM/SIGINT or when the master is gone.

Invariant: the master starts serving only after each child wrote one line ("<port>\\n", 0 without a port) to the
pipe named by READY_FD_VARIABLE (api/child_process.py reads it); a child never outlives its master.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

READY_FD_VARIABLE = "COUNT_READY_FD"
PARENT_CHECK_SECONDS = 0.5


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (install before anything slow, so a stop during start-up is kept)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def announce_ready(port: int) -> None:
    """Write the ready line to the master's pipe, if this process was started with one."""
    fd = os.environ.get(READY_FD_VARIABLE)
    if fd:
        os.write(int(fd), f"{port}\n".encode())
        os.close(int(fd))


def wait_until_stopped(stop: threading.Event, parent: int, log: logging.Logger, what: str) -> None:
    """Block until `stop` is set or the parent process `parent` is gone (then set `stop` too)."""
    while not stop.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            log.warning("count-server's master is gone; %s stops", what)
            stop.set()
