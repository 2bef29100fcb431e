"""Finding: one thing `countdb verify` found, printed one per line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """One thing verify found. A `problem` makes verify fail; a `note` is worth knowing but not wrong."""

    severity: str  # "problem" | "note"
    kind: str  # missing, size, checksum, unreadable, rows, orphan, leftover, catalog, damaged, wal:<kind>
    path: str  # relative to DATA_DIR
    detail: str
    action: str = ""  # what --repair did about it

    def line(self) -> str:
        action = f" [{self.action}]" if self.action else ""
        return f"{self.severity.upper():8} {self.kind:12} {self.path}: {self.detail}{action}"
