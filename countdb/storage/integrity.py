"""Is a block file what the catalog says it is? Existence, size, sha256, Parquet footer and row count.

Invariant: read-only; a check never changes a file (quarantine.py acts on what it finds).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from countdb.catalog.blocks import BlockRecord

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class BlockProblem:
    """Why a block cannot be trusted. `problem` is one of: missing, size, checksum, unreadable, rows."""

    path: str  # relative to DATA_DIR
    problem: str
    detail: str


def file_sha256(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks; `on_bytes(n)` is told as each chunk is read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def check_block(root: Path, block: BlockRecord, checksum: bool = True,
                on_bytes: Callable[[int], None] | None = None) -> BlockProblem | None:
    """The first thing wrong with `block`'s file under `root`, or None. Without `checksum` only the cheap
    checks run (size, footer, row count): enough for truncation and a broken footer, not for flipped bytes.
    Raises OSError when the file exists but can't be opened or read: that is the machine's trouble, not the file's."""
    path = root / block.path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return BlockProblem(block.path, "missing", "the file does not exist")
    if size != block.bytes:
        return BlockProblem(block.path, "size", f"{size} bytes where the catalog says {block.bytes}")
    if checksum:
        digest = file_sha256(path, on_bytes)
        if digest != block.sha256:
            return BlockProblem(block.path, "checksum", f"sha256 {digest} where the catalog says {block.sha256}")
    with open(path, "rb") as handle:  # an error opening it (permissions, too many files) is not damage
        try:
            rows = pq.ParquetFile(handle).metadata.num_rows
        except (OSError, pa.ArrowException) as error:
            return BlockProblem(block.path, "unreadable", f"Parquet footer: {error}")
    if rows != block.rows:
        return BlockProblem(block.path, "rows", f"{rows} rows where the catalog says {block.rows}")
    return None
