"""Process-level settings for long metric runs (the ``stfuse evaluate`` process, the benchmark)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory for reuse.

    The metrics allocate and free many full-resolution float64 maps per image. By default glibc maps
    each large block afresh and unmaps it on free, so every allocation pays its page faults again
    (expensive in virtual machines: 20–30 % of the metric time here). Only for a process that exists to
    compute metrics; returns False where this is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, 2**30) == 1
    return ok_mmap and ok_trim
