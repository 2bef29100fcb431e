"""ChildProcess: the gunicorn master's handle on a helper process of the node: the Arrow Flight process
(`python -m countdb.flight`), the compactor (`python -m countdb.ingest.compaction_process`) and the cluster agent
(`python -m countdb.cluster`).

Invariant: count-server starts only once the child announced itself (a line with its port, 0 if it has none),
restarts it whenever it dies while the master runs (as gunicorn does for a worker), and stops it on exit; if
the master dies without a word, the child notices its parent is gone and stops by itself.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time

from countdb.obs.readiness import READY_FD_VARIABLE

START_DEADLINE_SECONDS = 60.0
RESTART_DELAYS_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # after 1, 2, … quick deaths in a row; a long life resets it
STABLE_LIFE_SECONDS = 60.0


class ChildProcess:
    def __init__(self, module: str, label: str, log):
        self.module = module
        self.label = label
        self.process: subprocess.Popen | None = None
        self.port = 0
        self._log = log
        self._stopping = threading.Event()
        self._spawning = threading.Lock()  # stop() either sees the process a restart started, or stops the restart

    @classmethod
    def start(cls, module: str, label: str, log) -> "ChildProcess":
        """Start `python -m module`, wait until it announces itself, and watch it from a daemon thread;
        RuntimeError (which stops gunicorn) if the first start fails."""
        child = cls(module, label, log)
        child._spawn()
        threading.Thread(target=child._watch, name=f"{module}-watchdog", daemon=True).start()
        return child

    def stop(self, grace_seconds: float) -> None:
        """SIGTERM (it flushes its buffer), then SIGKILL after `grace_seconds`; no restart after this."""
        with self._spawning:
            self._stopping.set()
            process = self.process
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _spawn(self) -> bool:
        """Start the process and wait until it announces its port (False: stop() came first); RuntimeError
        (after killing it) if it announces none in time."""
        ready_read, ready_write = os.pipe()
        env = {**os.environ, READY_FD_VARIABLE: str(ready_write)}
        with self._spawning:
            if self._stopping.is_set():
                os.close(ready_read)
                os.close(ready_write)
                return False
            self.process = subprocess.Popen([sys.executable, "-m", self.module], env=env,
                                            pass_fds=(ready_write,))
        os.close(ready_write)
        try:
            line = _read_line(ready_read, START_DEADLINE_SECONDS)
        finally:
            os.close(ready_read)
        if not line.strip().isdigit():
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the {self.label} process did not start (see its log above)")
        self.port = int(line)
        return True

    def _watch(self) -> None:
        """Restart the process whenever it exits before stop(), backing off while it keeps dying quickly.

        gunicorn's master reaps every child on SIGCHLD, this one included; wait() then reports 0, which is
        why any exit before stop() counts as a death."""
        quick_deaths = 0
        while True:
            started = time.monotonic()
            code = self.process.wait()
            if self._stopping.is_set():
                return
            quick_deaths = 0 if time.monotonic() - started >= STABLE_LIFE_SECONDS else quick_deaths + 1
            delay = RESTART_DELAYS_SECONDS[min(quick_deaths, len(RESTART_DELAYS_SECONDS)) - 1] if quick_deaths else 0.0
            self._log.error("the %s process %d exited with %s; restarting it in %.0f s",
                            self.label, self.process.pid, code, delay)
            if self._stopping.wait(delay):
                return
            try:
                if not self._spawn():
                    return
            except RuntimeError as failure:
                self._log.error("%s", failure)
                continue
            self._log.info("%s process %d started (port %d)", self.label, self.process.pid, self.port)


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
