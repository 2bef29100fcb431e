"""A one-line progress bar on a terminal (stderr) for long copies and checksums; silent elsewhere.

Invariant: it only ever writes to its own stream, and nothing at all when that stream is not a terminal,
so logs and pipes get the final report alone.
"""

from __future__ import annotations

import time
from typing import TextIO

REDRAW_SECONDS = 0.2
WIDTH = 30


class Progress:
    """Counts bytes done against a total. The base class draws nothing (tests, library use)."""

    def __init__(self):
        self.label = ""
        self.total_bytes = 0
        self.done_bytes = 0

    def start(self, label: str, total_bytes: int) -> None:
        self.label, self.total_bytes, self.done_bytes = label, total_bytes, 0

    def advance(self, done_bytes: int) -> None:
        self.done_bytes += done_bytes

    def finish(self) -> None:
        """The job is over (done or failed)."""


class ProgressBar(Progress):
    def __init__(self, stream: TextIO):
        super().__init__()
        self.stream = stream
        self.enabled = stream.isatty()
        self._drawn_monotonic = 0.0

    def advance(self, done_bytes: int) -> None:
        super().advance(done_bytes)
        if self.enabled and time.monotonic() - self._drawn_monotonic >= REDRAW_SECONDS:
            self._draw()

    def finish(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self) -> None:
        self._drawn_monotonic = time.monotonic()
        share = min(1.0, self.done_bytes / self.total_bytes) if self.total_bytes else 1.0
        filled = int(share * WIDTH)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {share:4.0%} "
                          f"{human_bytes(self.done_bytes)} / {human_bytes(self.total_bytes)}")
        self.stream.flush()


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    value, unit = float(count), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
