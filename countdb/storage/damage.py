"""Damaged blocks: telling a damaged file from other failures, and setting it aside (quarantine).

Invariant: nothing is deleted. A damaged block is moved to node_state/quarantine/<its path> and moved from
`blocks` to `damaged_files` in one catalog transaction; a check that finds nothing wrong quarantines nothing.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
from pathlib import Path

import duckdb

from countdb.catalog.blocks import BlockRecord
from countdb.catalog.damage import DamagedFile, block_row, record_damage
from countdb.catalog.db import transaction
from countdb.datadir import DataDir, fsync_dir
from countdb.storage.integrity import BlockProblem, check_block

log = logging.getLogger(__name__)

# DuckDB's errors for a file it cannot read: missing (IOException), truncated (InvalidInputException:
# "No magic bytes"), a broken footer (plain duckdb.Error "don't know what type"), bad page data (IOException,
# InternalException, SerializationException). SQL mistakes, timeouts and memory limits are other classes.
_MAYBE_DAMAGE = (duckdb.IOException, duckdb.InvalidInputException, duckdb.InternalException,
                 duckdb.SerializationException)


def may_be_damage(error: duckdb.Error) -> bool:
    """Could a damaged file explain `error`? (If so, find_damaged says which file, or that none is.)"""
    return isinstance(error, _MAYBE_DAMAGE) or type(error) is duckdb.Error


def find_damaged(root: Path, blocks: list[BlockRecord]) -> list[BlockProblem]:
    """The damaged files among `blocks`: the cheap checks first, and only when they find nothing, checksums."""
    for checksum in (False, True):
        problems = [p for p in (check_block(root, b, checksum=checksum) for b in blocks) if p is not None]
        if problems:
            return problems
    return []


def quarantine_block(datadir: DataDir, catalog: sqlite3.Connection, problem: BlockProblem) -> bool:
    """Move a damaged block aside and unpublish it, atomically for every reader. Returns False when the
    catalog no longer lists it (another worker got there first, or it was replaced)."""
    with transaction(catalog):
        block = block_row(catalog, problem.path)
        if block is None:
            return False
        kept = move_aside(datadir, problem.path)
        record_damage(catalog, DamagedFile(problem.path, block.kind, problem.problem, problem.detail, kept,
                                           block.rows, block.min_ts, block.max_ts))
    log.error("block %s is damaged (%s: %s); %s, its %d rows (%d..%d ms) are no longer served",
              problem.path, problem.problem, problem.detail, f"moved to {kept}" if kept else "nothing to keep",
              block.rows, block.min_ts, block.max_ts)
    return True


def quarantine_damaged(datadir: DataDir, catalog: sqlite3.Connection, blocks: list[BlockRecord]) -> list[str]:
    """find_damaged, then quarantine_block each: the paths set aside, now or by another worker a moment ago."""
    problems = find_damaged(datadir.root, blocks)
    for problem in problems:
        quarantine_block(datadir, catalog, problem)
    return [problem.path for problem in problems]


def quarantine_target(datadir: DataDir, relative: str) -> Path:
    """node_state/quarantine/<relative>, with a numeric suffix if something is already there."""
    target = datadir.quarantine / relative
    number = 0
    while target.exists():
        number += 1
        target = datadir.quarantine / f"{relative}.{number}"
    return target


def move_aside(datadir: DataDir, relative: str) -> str | None:
    """Move a file into the quarantine; returns where it went (relative to DATA_DIR), None if it is gone."""
    source = datadir.root / relative
    if not source.exists():
        return None
    target = quarantine_target(datadir, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(source, target)
    fsync_dir(target.parent)
    fsync_dir(source.parent)
    return str(target.relative_to(datadir.root))


def copy_aside(datadir: DataDir, relative: str) -> str:
    """Copy a file into the quarantine (the original stays in use); returns the copy's path."""
    target = quarantine_target(datadir, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(datadir.root / relative, target)
    fsync_dir(target.parent)
    return str(target.relative_to(datadir.root))
