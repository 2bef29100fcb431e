"""HintStore: writes held for a node that was down (hinted handoff), one file per write under hints/<node>/.

Invariant: a hint is acknowledged only once its file is fsynced and renamed into place, so it survives kill -9;
a delivered hint is deleted only after its node acknowledged it, so delivery is at-least-once, which is safe
because every copy of a write carries the same stamp (the replica keeps one).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from countdb.cluster.wire import decode_stream, encode_stream
from countdb.datadir import fsync_dir
from countdb.errors import StorageError

POINTS_SUFFIX = ".points"
DELETE_SUFFIX = ".delete"
_counter = itertools.count()


@dataclass(frozen=True)
class Hint:
    path: Path
    target: int

    @property
    def is_delete(self) -> bool:
        return self.path.suffix == DELETE_SUFFIX

    def points(self) -> pa.Table:
        return decode_stream(self.path.read_bytes())

    def delete_request(self) -> dict:
        return json.loads(self.path.read_text())


class HintStore:
    def __init__(self, root: Path):
        self.root = root

    def folder(self, target: int) -> Path:
        return self.root / str(target)

    def store_points(self, target: int, seq: int, table: pa.Table) -> Path:
        """Durably keep `table` (stamped points) for node `target`; raises StorageError."""
        return self._store(target, seq, POINTS_SUFFIX, encode_stream(table))

    def store_delete(self, target: int, seq: int, request: dict) -> Path:
        """Durably keep a delete (its JSON request) for node `target`; raises StorageError."""
        return self._store(target, seq, DELETE_SUFFIX, json.dumps(request).encode())

    def _store(self, target: int, seq: int, suffix: str, data: bytes) -> Path:
        folder = self.folder(target)
        # NOTE: the name sorts by stamp, so hints are delivered in write order; pid and counter keep the
        # workers of one node from ever naming two files alike.
        name = f"{seq:020d}-{os.getpid()}-{next(_counter)}{suffix}"
        temporary = folder / f".{name}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / name)
            fsync_dir(folder)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise StorageError(f"cannot keep a hint for node {target + 1}: {error.strerror}",
                               path=str(folder)) from None
        return folder / name

    def pending(self, target: int) -> list[Hint]:
        """Hints for `target`, oldest write first."""
        folder = self.folder(target)
        if not folder.is_dir():
            return []
        names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        return [Hint(folder / name, target) for name in names]

    def counts(self) -> dict[int, int]:
        """Pending hints per target node."""
        if not self.root.is_dir():
            return {}
        return {int(entry.name): len(self.pending(int(entry.name)))
                for entry in self.root.iterdir() if entry.name.isdigit()}

    def delivered(self, hints: list[Hint]) -> None:
        """Forget hints their target acknowledged: one directory fsync per folder, not per hint (a backlog is
        thousands of hints; one that comes back after a crash is delivered again, which stores nothing new)."""
        for hint in hints:
            hint.path.unlink(missing_ok=True)
        for folder in {hint.path.parent for hint in hints}:
            fsync_dir(folder)

    def remove_leftovers(self) -> int:
        """Delete half-written hint files (a process died mid-write; never acknowledged). Run at start."""
        removed = 0
        for leftover in self.root.glob("*/.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
        return removed
