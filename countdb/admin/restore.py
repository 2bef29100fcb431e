"""restore(): rebuild a data directory from a backup (a folder or .tar.gz written by backup()).

Invariant: nothing is deleted and nothing half-restored is left in place. Every file is checked against the
backup's manifest (size, sha256) in a staging folder first; only then are the directory's old contents, if
any, moved into pre-restore-<time>/ and the staged ones moved in. A node running on the directory is refused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import tarfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from countdb.admin.archive import FolderWriter, is_tarball
from countdb.admin.backup import CATALOG, FORMAT, MANIFEST
from countdb.admin.progress import Progress
from countdb.datadir import DataDir, fsync_dir
from countdb.errors import StorageError, Unavailable
from countdb.storage.paths import BlockPath
from countdb.wal.log import WriterLock, writer_dirs

_WAL_PATH = re.compile(r"wal/[A-Za-z0-9][A-Za-z0-9_-]*/\d{8}\.wal\Z")
KEEP_IN_PLACE = ("lost+found",)  # a volume's root may hold this; it is not Count's to move
RESTORED_FROM = "restored-from.json"


@dataclass
class RestoreReport:
    datadir: Path
    blocks: int
    block_rows: int
    segments: int
    wal_records: int
    moved_aside: Path | None
    seconds: float


def restore(source: Path, datadir: DataDir, progress: Progress | None = None) -> RestoreReport:
    """Restore the backup at `source` into `datadir` (created if missing). Raises Unavailable when a node
    runs on `datadir`, StorageError when the backup is incomplete, damaged or not a Count backup."""
    started = time.monotonic()
    progress = progress or Progress()
    _refuse_running_node(datadir)
    datadir.root.mkdir(parents=True, exist_ok=True)
    staging = datadir.root / f".restore-{secrets.token_hex(4)}"
    writer = FolderWriter(staging, progress)
    try:
        manifest = (_from_tarball if is_tarball(source) else _from_folder)(source, writer)
        _check_catalog(writer.partial, manifest)
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.finish()
    writer.commit()
    moved_aside = _move_old_contents_aside(datadir, staging)
    for entry in staging.iterdir():
        os.rename(entry, datadir.root / entry.name)
    staging.rmdir()
    datadir.create()
    (datadir.node_state / RESTORED_FROM).write_text(json.dumps(
        {**manifest, "backup": str(source), "restored_utc": _utc_now()}, indent=1) + "\n")
    fsync_dir(datadir.root)
    return RestoreReport(datadir.root, manifest["blocks"], manifest["block_rows"], manifest["wal_segments"],
                         manifest["wal_records"], moved_aside, time.monotonic() - started)


def _refuse_running_node(datadir: DataDir) -> None:
    """A running worker holds the flock of its WAL folder; a node without workers can't be told apart."""
    for folder in writer_dirs(datadir.wal):
        lock = WriterLock(folder)
        if not lock.try_acquire():
            raise Unavailable(f"a Count node is running on {datadir.root} ({folder} is locked); stop it first")
        lock.release()


def _from_folder(source: Path, writer: FolderWriter) -> dict:
    try:
        manifest = _parse_manifest((source / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise StorageError(f"{source} is not a Count backup (no {MANIFEST})", path=str(source)) from None
    writer.progress.start("restore", sum(f["bytes"] for f in manifest["files"]))
    for entry in manifest["files"]:
        try:
            handle = open(source / entry["path"], "rb")
        except FileNotFoundError:
            raise StorageError(f"the backup lacks {entry['path']}", path=entry["path"]) from None
        with handle:
            _check(entry, writer.add(entry["path"], handle, entry["bytes"]), os.fstat(handle.fileno()).st_size)
    return manifest


def _from_tarball(source: Path, writer: FolderWriter) -> dict:
    """Stream the archive once: the manifest comes first, every later member must be one it lists."""
    try:
        with tarfile.open(source, mode="r|gz") as archive:
            members = iter(archive)
            first = next(members, None)
            if first is None or first.name != MANIFEST or not first.isfile():
                raise StorageError(f"{source} is not a Count backup ({MANIFEST} is not its first member)",
                                   path=str(source))
            manifest = _parse_manifest(archive.extractfile(first).read())
            expected = {entry["path"]: entry for entry in manifest["files"]}
            writer.progress.start("restore", sum(f["bytes"] for f in manifest["files"]))
            for member in members:
                entry = expected.pop(member.name, None)
                if entry is None or not member.isfile():
                    raise StorageError(f"{source} holds {member.name!r}, which its manifest does not list",
                                       path=str(source))
                _check(entry, writer.add(member.name, archive.extractfile(member), member.size), member.size)
    except (tarfile.TarError, EOFError, OSError) as error:
        raise StorageError(f"cannot read {source}: {error}", path=str(source)) from None
    if expected:
        raise StorageError(f"{source} lacks {len(expected)} files its manifest lists, e.g. {next(iter(expected))}",
                           path=str(source))
    return manifest


def _parse_manifest(data: bytes) -> dict:
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise StorageError(f"{MANIFEST} is not JSON: {error}", path=MANIFEST) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StorageError(f"{MANIFEST} is not a {FORMAT} manifest", path=MANIFEST)
    for entry in manifest["files"]:
        _check_path(entry["path"])
    return manifest


def _check_path(relative: str) -> None:
    """Only the three kinds of file a backup holds, under their own names: nothing can land elsewhere."""
    if relative == CATALOG or _WAL_PATH.match(relative):
        return
    try:
        BlockPath.parse(relative)
    except ValueError:
        raise StorageError(f"the backup names {relative!r}, which is not a Count data file", path=relative) from None


def _check(entry: dict, digest: str, size: int) -> None:
    if size != entry["bytes"] or digest != entry["sha256"]:
        raise StorageError(f"{entry['path']} in the backup is damaged ({size} bytes, sha256 {digest}; the "
                           f"manifest says {entry['bytes']} bytes, {entry['sha256']})", path=entry["path"])


def _check_catalog(staged: Path, manifest: dict) -> None:
    """The restored catalog is sound and lists no block the backup lacks."""
    connection = sqlite3.connect(staged / CATALOG)
    try:
        integrity = connection.execute("PRAGMA quick_check").fetchall()
        listed = {path for (path,) in connection.execute("SELECT path FROM blocks")}
    except sqlite3.Error as error:
        raise StorageError(f"the backup's catalog is unreadable: {error}", path=CATALOG) from None
    finally:
        connection.close()
    if integrity != [("ok",)]:
        raise StorageError(f"the backup's catalog is damaged: {integrity[0][0]}", path=CATALOG)
    lacking = listed - {entry["path"] for entry in manifest["files"]}
    if lacking:
        raise StorageError(f"the backup's catalog lists {len(lacking)} blocks the backup lacks, e.g. "
                           f"{sorted(lacking)[0]}", path=CATALOG)


def _move_old_contents_aside(datadir: DataDir, staging: Path) -> Path | None:
    """Move what the directory held into pre-restore-<UTC time>/ (kept for the operator to delete)."""
    old = [entry for entry in datadir.root.iterdir() if entry != staging and entry.name not in KEEP_IN_PLACE
           and not entry.name.startswith(("pre-restore-", ".restore-"))]
    if not old:
        return None
    aside = datadir.root / f"pre-restore-{_utc_now().replace(':', '-')}"
    aside.mkdir()
    for entry in old:
        os.rename(entry, aside / entry.name)
    fsync_dir(aside)
    return aside


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
