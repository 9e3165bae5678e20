"""Keep freed memory inside the process (glibc), so that large CPU tensors are not page-faulted in anew on every call.

glibc returns allocations above its mmap threshold (32 MB at most) to the kernel as soon as they are freed, and trims
the heap top whenever more than a few tens of MB lie free there. The full-size Video Swin backbone allocates and frees
large short-lived tensors all through its forward, so with glibc's defaults a forward takes about 200 thousand page
faults of fresh zeroed memory. `keep_freed_memory` turns both off so that freed blocks are reused: in back-to-back runs
on two cores the forward went from 2.08 s to 1.46 s (see the README's benchmark section). The price: the process
keeps the memory it has freed until it exits, and its peak grows a little, since an aligned block that no longer fits
a freed hole is placed at the heap top instead.

It changes the whole process, so the package never calls it on import; the `emotions-hf` command, the example scripts
and `bench/model_speed.py` call it for their own process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform
from functools import lru_cache

logger = logging.getLogger(__name__)

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_LARGEST_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int


@lru_cache(maxsize=1)
def keep_freed_memory() -> bool:
    """Stop glibc from handing freed memory back to the kernel, for this process and the processes it forks.

    Returns True when applied, False where the C library is not glibc (macOS, Windows, musl) and nothing changed.
    Idempotent.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    applied = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _LARGEST_TRIM_THRESHOLD) == 1
    if not applied:
        logger.warning("glibc refused mallopt: freed CPU memory is still returned to the kernel")
    return applied


__all__ = ["keep_freed_memory"]
