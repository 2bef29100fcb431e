"""Allocator settings for Count's processes, applied in the gunicorn master before workers fork.

Why: a worker's live data is small (bounded buffers), but its RSS is set by freed memory the allocators keep:
glibc makes an arena per thread and pyarrow's mimalloc holds freed pages. Measured in bench/ (issue 2: worker
RSS ≤ 300 MB), capping glibc's arenas and giving pyarrow the system allocator takes ~100 MB off each worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

import pyarrow as pa

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # from glibc's malloc.h
MALLOC_ARENAS = 2


def bound_allocators() -> None:
    """Cap glibc malloc arenas and route pyarrow through malloc. Inherited by forked workers."""
    pa.set_memory_pool(pa.system_memory_pool())
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        capped = bool(libc and libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to cap
        capped = False
    if not capped:
        log.info("malloc arenas not capped: this C library has no mallopt(M_ARENA_MAX)")
