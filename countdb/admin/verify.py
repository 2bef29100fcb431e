"""verify(): check a data directory — every catalog block has its file with the right size, checksum and
row count, every file under time_blocks/ is in the catalog, every live WAL segment reads to its end.

Invariant: without `repair` nothing is written (the catalog is opened read-only). With it, bad blocks and
stray files are moved to node_state/quarantine/, never deleted, and each damaged block leaves the catalog
in the same transaction that registers it in damaged_files.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import nullcontext
from dataclasses import dataclass, field

from countdb.admin.findings import Finding
from countdb.admin.progress import Progress
from countdb.admin.walcheck import check_wal
from countdb.catalog.blocks import BlockRecord, snapshot
from countdb.catalog.compaction import block_files_in_use
from countdb.catalog.damage import block_row, damaged_files, forget_damage
from countdb.catalog.db import connect, connect_read_only, transaction
from countdb.catalog.migrate import migrate
from countdb.datadir import DataDir, exclusive_lock
from countdb.storage.damage import move_aside, quarantine_block
from countdb.storage.integrity import BlockProblem, check_block
from countdb.storage.paths import TIME_BLOCKS, TMP_PREFIX


@dataclass
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    blocks: int = 0
    rows: int = 0
    segments: int = 0

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "problem"]


def verify(datadir: DataDir, repair: bool = False, progress: Progress | None = None) -> VerifyReport:
    """Check `datadir` (safe while a node runs on it); with `repair`, quarantine what is bad."""
    report = VerifyReport()
    if not datadir.catalog_path.is_file():
        report.findings.append(Finding("problem", "catalog", str(datadir.catalog_path.relative_to(datadir.root)),
                                       "there is no catalog: not a Count data directory, or it lost its index"))
        return report
    if repair:
        migrate(datadir.catalog_path)
    catalog = connect(datadir.catalog_path) if repair else connect_read_only(datadir.catalog_path)
    try:
        try:
            integrity = catalog.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as error:  # "database disk image is malformed"
            integrity = [(str(error),)]
        if integrity != [("ok",)]:
            report.findings.append(Finding("problem", "catalog", "series_index/catalog.sqlite",
                                           "; ".join(row[0] for row in integrity[:5])))
            return report
        # NOTE: the flush lock keeps a flush's written-but-not-yet-published file from looking like an orphan.
        writable = os.access(datadir.node_state, os.W_OK)
        with exclusive_lock(datadir.flush_lock_path) if writable else nullcontext():
            current = snapshot(catalog)
            # Retired blocks (replaced by compaction) stay until their grace period ends: not strays.
            report.findings += _stray_files(datadir, block_files_in_use(catalog), repair)
        report.blocks, report.rows = len(current.blocks), sum(b.rows for b in current.blocks)
        report.findings += _check_blocks(datadir, catalog, current.blocks, repair, progress or Progress())
        wal_findings, report.segments = check_wal(datadir, catalog, current.retired_segments, repair)
        report.findings += wal_findings
        found = {finding.path for finding in report.findings}
        report.findings += [note for note in _registered_damage(catalog) if note.path not in found]
    finally:
        catalog.close()
    return report


def acknowledge_damage(datadir: DataDir) -> int:
    """Forget the registered damage (/health turns healthy again); quarantined files stay. Returns how many."""
    migrate(datadir.catalog_path)
    catalog = connect(datadir.catalog_path)
    try:
        with transaction(catalog):
            return forget_damage(catalog)
    finally:
        catalog.close()


def _check_blocks(datadir: DataDir, catalog: sqlite3.Connection, blocks: tuple[BlockRecord, ...], repair: bool,
                  progress: Progress) -> list[Finding]:
    progress.start("verify", sum(b.bytes for b in blocks))
    try:
        problems = [p for p in (check_block(datadir.root, b, on_bytes=progress.advance) for b in blocks) if p]
    finally:
        progress.finish()
    findings = []
    for problem in problems:
        if block_row(catalog, problem.path) is None:
            continue  # unpublished since the snapshot (compaction, or a worker quarantined it): not a problem
        findings.append(_block_finding(datadir, catalog, problem, repair))
    return findings


def _block_finding(datadir: DataDir, catalog: sqlite3.Connection, problem: BlockProblem, repair: bool) -> Finding:
    action = ""
    if repair and quarantine_block(datadir, catalog, problem):
        action = "quarantined; removed from the catalog"
    return Finding("problem", problem.problem, problem.path, problem.detail, action)


def _stray_files(datadir: DataDir, published: set[str], repair: bool) -> list[Finding]:
    """Files under time_blocks/ that the catalog does not list: tmp leftovers of a crashed flush, or orphans."""
    findings = []
    for file in sorted(p for p in (datadir.root / TIME_BLOCKS).rglob("*") if p.is_file()):
        relative = str(file.relative_to(datadir.root))
        if relative in published:
            continue
        leftover = file.name.startswith(TMP_PREFIX)
        kind, detail = ("leftover", "a temporary file of an interrupted flush") if leftover else \
            ("orphan", "a file the catalog does not list (its points are not served)")
        action = f"moved to {move_aside(datadir, relative)}" if repair else ""
        findings.append(Finding("problem", kind, relative, detail, action))
    return findings


def _registered_damage(catalog: sqlite3.Connection) -> list[Finding]:
    try:
        damaged = damaged_files(catalog)
    except sqlite3.OperationalError:  # a catalog from before migration 0003 has no register
        return []
    return [Finding("note", "damaged", d.path, f"registered damage ({d.problem}: {d.detail}); "
                    + (f"kept at {d.quarantined_as}" if d.quarantined_as else "no file was left to keep"))
            for d in damaged]
