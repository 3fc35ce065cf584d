"""Keep freed memory in the process on glibc Linux, so that large CPU tensors reuse warm pages.

glibc's ``malloc`` serves blocks above a threshold (at most 32 MB, by default adapting upward)
with fresh ``mmap`` pages and gives them back to the kernel on ``free``. Training a PixelCNN on
CPU allocates and frees activations of tens of MB (batch 128 × 128 channels × 28 × 28 floats is
51 MB) in every layer, so each step pays for page faults and for the kernel zeroing those pages
again. Raising the mmap and trim thresholds makes ``malloc`` keep that memory in its heap and
reuse it, as a caching allocator does (the process keeps its peak memory instead of returning it).

``python benchmarks/pixelcnn_speed.py --glibc-malloc-defaults`` measures the difference
(docs/speed.md); GPU memory is not concerned.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap; up to 2 GiB of free heap is kept

DISABLE_VARIABLE = "DEEPUL_GLIBC_MALLOC_DEFAULTS"


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so that freed tensors stay in the heap for reuse.

    A no-op (returns False) off Linux, without glibc, when the user already tunes malloc
    through ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, or when
    ``DEEPUL_GLIBC_MALLOC_DEFAULTS`` is set to a non-empty value. Returns True when both
    settings were applied."""
    if not sys.platform.startswith("linux") or os.environ.get(DISABLE_VARIABLE):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES) == 1
    trim_ok = mallopt(_M_TRIM_THRESHOLD, 2 * _KEEP_BYTES - 1) == 1
    return mmap_ok and trim_ok
