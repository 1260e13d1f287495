"""glibc malloc tuning for CPU decoding (process-wide, so only on request; torch is not imported)."""

from __future__ import annotations

import os
import sys

_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed large blocks instead of returning them to the system.

    Every convolution of a decode allocates a fresh full-size output; by default glibc serves such blocks
    with ``mmap`` and unmaps them when freed, so each call faults in new zeroed pages, which costs more than
    a pass of arithmetic over them (measured: 5-9% of a 256x256 decode on the development CPU). Raising
    the mmap and trim thresholds keeps them in the heap.

    This changes a **process-wide** setting, for the rest of the process, so the library never calls it
    by itself: the ``seegaan`` commands that decode on the CPU do, and a script can. A no-op where glibc
    is absent or the environment sets ``SEEGAAN_KEEP_FREED_MEMORY=0``. Returns whether the setting is in
    effect.
    """
    global _TUNED
    if _TUNED or os.environ.get("SEEGAAN_KEEP_FREED_MEMORY", "1") == "0":
        return _TUNED
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # deferred: ctypes (malloc tuning on request)
    import ctypes.util  # deferred: ctypes (malloc tuning on request)

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        # older glibc caps the mmap threshold at 32 MiB: fall back to the cap
        mmap_ok = any(libc.mallopt(m_mmap_threshold, size) == 1 for size in (1 << 30, 32 << 20))
        ok = mmap_ok and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    _TUNED = ok
    return ok
