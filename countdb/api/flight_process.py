"""FlightProcess: the gunicorn master's handle on the Arrow Flight process (`python -m countdb.flight`).

Invariant: count-server starts only once Flight is listening (or FLIGHT_PORT is 0), and stops it on exit;
if the master dies without a word, the Flight process notices its parent is gone and stops by itself.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

READY_FD_VARIABLE = "COUNT_FLIGHT_READY_FD"
START_DEADLINE_SECONDS = 60.0


class FlightProcess:
    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port

    @classmethod
    def start(cls) -> "FlightProcess":
        """Start it and wait until it listens; RuntimeError (which stops gunicorn) if it can't."""
        ready_read, ready_write = os.pipe()
        env = {**os.environ, READY_FD_VARIABLE: str(ready_write)}
        process = subprocess.Popen([sys.executable, "-m", "countdb.flight"], env=env, pass_fds=(ready_write,))
        os.close(ready_write)
        try:
            line = _read_line(ready_read, START_DEADLINE_SECONDS)
        finally:
            os.close(ready_read)
        if not line.strip().isdigit():
            process.kill()
            process.wait()
            raise RuntimeError("the Arrow Flight process did not start (see its log above; is FLIGHT_PORT free?)")
        return cls(process, int(line))

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM (it flushes its buffer), then SIGKILL after `grace_seconds`."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _read_line(fd: int, deadline_seconds: float) -> str:
    """Bytes up to a newline, or whatever came before EOF or the deadline."""
    data, deadline = b"", time.monotonic() + deadline_seconds
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            break
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
