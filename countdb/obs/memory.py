"""Allocator settings for Count's processes, applied in the gunicorn master before workers fork.

Why: a worker's live data is small (bounded buffers), but its RSS is set by freed memory the allocators keep:
glibc makes an arena per thread and pyarrow's mimalloc holds freed pages. Measured in bench/ (issue 2: worker
RSS ≤ 300 MB), capping glibc's arenas and giving pyarrow the system allocator takes ~100 MB off each worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

# NOTE: Arrow's C++ code (the Parquet writer's buffers, zstd) allocates from its own default pool, not from
# pa.set_memory_pool's; that pool is chosen from this variable when pyarrow is first imported, so it must be
# set before. mimalloc, its default, reserves 1 GiB and kept 20-50 MB resident per worker after some flushes.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import pyarrow as pa  # noqa: E402  (after the variable above)

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
MALLOC_ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def bound_allocators() -> None:
    """Cap glibc malloc arenas and route pyarrow's Python-side allocations through malloc too (the C++ side
    follows ARROW_DEFAULT_MEMORY_POOL, set above). Inherited by forked workers.

    NOTE: glibc's mmap threshold is left sliding. Fixed at 1 MiB, it cost the medium bench ingest ~12 % more
    CPU for no clear RSS gain over release_free_memory: zstd's ~2.5 MB level-9 workspace, made per Parquet
    page, was then mmapped and faulted in every time (issue 2)."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        capped = bool(_LIBC and _LIBC.mallopt(M_ARENA_MAX, MALLOC_ARENAS))
    except AttributeError:  # not glibc (musl, macOS): nothing to cap
        capped = False
    if not capped:
        log.info("malloc arenas not capped: this C library has no mallopt(M_ARENA_MAX)")


def release_free_memory() -> None:
    """Hand the free pages inside glibc's arenas back to the kernel (malloc_trim). Worth it after a flush:
    its sort, dedup and Parquet buffers leave tens of MB free but resident, fragmented below live data."""
    try:
        if _LIBC is not None:
            _LIBC.malloc_trim(0)
    except AttributeError:  # not glibc: its allocator returns memory its own way
        pass
