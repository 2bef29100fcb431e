"""Allocator settings for Count's processes, applied in the gunicorn master before workers fork.

Why: a worker's live data is small (bounded buffers), but its RSS is set by freed memory the allocators keep:
glibc makes an arena per thread and pyarrow's mimalloc holds freed pages. Measured in bench/ (issue 2: worker
RSS ≤ 300 MB), capping glibc's arenas and giving pyarrow the system allocator takes ~100 MB off each worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os

# NOTE: Arrow's C++ code (the Parquet writer's buffers, zstd) allocates from its own default pool, not from
# pa.set_memory_pool's; that pool is chosen from this variable when pyarrow is first imported, so it must be
# set before. mimalloc, its default, reserves 1 GiB and kept 20-50 MB resident per worker after some flushes.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import pyarrow as pa  # noqa: E402  (after the variable above)

log = logging.getLogger(__name__)

M_ARENA_MAX, M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -8, -1, -3  # from glibc's malloc.h
MALLOC_ARENAS = 2
# NOTE: glibc's default thresholds adapt: after a query frees the ~1-3 MB a decoded row group took, the heap top
# is trimmed, and the next query page-faults it all back (+0.7 ms of CPU per one-hour range query, issue 4).
# Fixed thresholds keep up to TRIM_THRESHOLD_BYTES of freed heap top per arena; blocks above MMAP_THRESHOLD_BYTES
# still go straight back to the system when freed.
TRIM_THRESHOLD_BYTES = 8 << 20
MMAP_THRESHOLD_BYTES = 4 << 20


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


_LIBC = _libc()


def bound_allocators() -> None:
    """Cap glibc malloc arenas, fix its trim and mmap thresholds, and route pyarrow's Python-side allocations
    through malloc too (the C++ side follows ARROW_DEFAULT_MEMORY_POOL, set above). Inherited by forked workers.

    NOTE: the mmap threshold must stay above zstd's ~2.5 MB level-9 workspace, made per Parquet page: fixed at
    1 MiB, that workspace was mmapped and faulted in every time, and the medium bench ingest cost ~12 % more CPU
    (issue 2); 4 MiB keeps it on the heap."""
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        capped = bool(_LIBC and _LIBC.mallopt(M_ARENA_MAX, MALLOC_ARENAS))
        if capped:
            _LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
            _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
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


def freeze_start_up_objects() -> int:
    """Collect, then move every object alive now (modules, the app, its services) out of the garbage collector's
    reach (gc.freeze); returns how many. Called in each worker once its app is loaded.

    Why: a full collection walks every tracked object and holds the GIL while it does. A worker holds ~90,000
    from its imports and app alone (pyarrow, DuckDB, falcon), and requests allocate enough to set full
    collections off: single-point insert p99 43-92 ms in six runs without, 17-28 ms in 16 of 18 with (41, 88; 16
    connections, 2 workers, same hour; issue 17). Objects made later are collected as usual.

    Cost: full collections could come more often (Python waits for a quarter of the unfrozen long-lived objects);
    under 50 clients that never read a large answer none ran at all when measured (docs/performance.md, "Fewer
    system calls and no full collections per insert")."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
