"""Where a backup is written: a folder, or a .tar.gz file, built under a hidden partial name and renamed
into place only when complete.

Invariant: a backup path that exists holds a whole backup; an interrupted run leaves at most a hidden
`.<name>.partial-<token>` beside it, which abort() removes.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import tarfile
import time
from abc import ABC, abstractmethod
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from countdb.admin.progress import Progress
from countdb.datadir import fsync_dir
from countdb.errors import StorageError

CHUNK_BYTES = 1 << 20
TAR_SUFFIXES = (".tar.gz", ".tgz")
# NOTE: blocks are zstd Parquet already; gzip level 1 shrinks the catalog and WAL, and costs little CPU.
GZIP_LEVEL = 1


def is_tarball(path: Path) -> bool:
    return path.name.endswith(TAR_SUFFIXES)


class HashingReader(io.RawIOBase):
    """Reads `source`, hashing and counting what passes through."""

    def __init__(self, source: BinaryIO, progress: Progress):
        self.source = source
        self.progress = progress
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(size)
        self.digest.update(chunk)
        self.progress.advance(len(chunk))
        return chunk


class BackupWriter(ABC):
    """Receives a backup's files (paths relative to the backup root) and publishes them all at once."""

    def __init__(self, destination: Path, progress: Progress):
        if destination.exists():
            raise StorageError(f"{destination} already exists; a backup never overwrites one", path=str(destination))
        destination.parent.mkdir(parents=True, exist_ok=True)
        self.destination = destination
        self.partial = destination.with_name(f".{destination.name}.partial-{secrets.token_hex(4)}")
        self.progress = progress

    @abstractmethod
    def add(self, relative: str, source: BinaryIO, size: int) -> str:
        """Copy `size` bytes of `source` in as `relative`; returns their sha256. Raises StorageError if short."""

    @abstractmethod
    def commit(self) -> None:
        """Make the backup durable and move it to its name."""

    @abstractmethod
    def abort(self) -> None:
        """Remove the partial backup."""


class FolderWriter(BackupWriter):
    def __init__(self, destination: Path, progress: Progress):
        super().__init__(destination, progress)
        self.partial.mkdir()

    def add(self, relative: str, source: BinaryIO, size: int) -> str:
        target = self.partial / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        reader, copied = HashingReader(source, self.progress), 0
        with open(target, "wb") as out:
            while copied < size:
                chunk = reader.read(min(CHUNK_BYTES, size - copied))
                if not chunk:
                    raise StorageError(f"{relative} ended after {copied} of {size} bytes", path=relative)
                out.write(chunk)
                copied += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        return reader.digest.hexdigest()

    def commit(self) -> None:
        for folder, _, _ in os.walk(self.partial, topdown=False):
            fsync_dir(Path(folder))
        os.rename(self.partial, self.destination)
        fsync_dir(self.destination.parent)

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


class TarWriter(BackupWriter):
    def __init__(self, destination: Path, progress: Progress):
        super().__init__(destination, progress)
        self._raw = open(self.partial, "xb")
        self._tar = tarfile.open(fileobj=self._raw, mode="w:gz", compresslevel=GZIP_LEVEL)

    def add(self, relative: str, source: BinaryIO, size: int) -> str:
        info = tarfile.TarInfo(relative)
        info.size, info.mtime, info.mode = size, int(time.time()), 0o644
        reader = HashingReader(source, self.progress)
        try:
            self._tar.addfile(info, reader)
        except OSError as error:  # tarfile's "unexpected end of data": the source was shorter than `size`
            raise StorageError(f"{relative}: {error}", path=relative) from None
        return reader.digest.hexdigest()

    def commit(self) -> None:
        self._tar.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.rename(self.partial, self.destination)
        fsync_dir(self.destination.parent)

    def abort(self) -> None:
        with suppress(OSError, tarfile.TarError):
            self._tar.close()
        self._raw.close()
        self.partial.unlink(missing_ok=True)


def open_backup_writer(destination: Path, progress: Progress) -> BackupWriter:
    """A TarWriter for a name ending .tar.gz/.tgz, else a FolderWriter."""
    return (TarWriter if is_tarball(destination) else FolderWriter)(destination, progress)
