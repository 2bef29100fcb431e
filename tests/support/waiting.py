"""Polling for a condition that a server reaches in its own time (a flush, a compaction)."""

from __future__ import annotations

import time


def wait_for(condition, seconds: float = 30.0) -> bool:
    """True as soon as `condition()` is; False if it is still false after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
