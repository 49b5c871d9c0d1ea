"""Keep freed frame-sized buffers in the process instead of handing them back to the kernel.

Why: every stage allocates NumPy arrays the size of a frame (a 512x480 float32 matte is 1 MB, the
frame as float RGB 3 MB). glibc's malloc serves a block over ``M_MMAP_THRESHOLD`` (128 KiB at
start, raised only as far as the largest block freed so far) with a fresh ``mmap`` and gives it
back on ``free``, and trims the heap's top once 2x that is free there: the next frame's arrays
fault their pages in again, each zero-filled by the kernel. Frame after frame that was a sixth
of the CPU. Measured in one sitting (2 cores, load 0.8-1.9, docs/reliability.md): the serve
pipeline at 512x480 24.0-25.8 -> 20.9-21.4 ms of CPU a frame; ``backdrop video`` on the
720x1280 portrait clip 9.7 -> 8.7-8.9 s, system time 2.0 -> 0.6 s, peak memory +2 %. Raising the
trim threshold alone is far worse (65 ms a frame: it freezes the mmap threshold at 128 KiB), so
both are set, the mmap threshold first.

Called by the command line, by each serve frame worker and by each Ray job (a call costs a few
microseconds, so a worker that runs many jobs may repeat it); a program using the
API calls :func:`keep_frame_buffers` itself if it wants the same. Other C libraries (macOS, musl)
and a user's own ``MALLOC_*_`` / ``GLIBC_TUNABLES`` malloc settings are left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_FROM = 32 << 20  # blocks under 32 MiB come from the heap (a 1080p float32 RGB frame is 24 MiB)
TRIM_FROM = 64 << 20  # up to 64 MiB free at the heap's top stays with the process
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")


def _user_tuned() -> bool:
    return any(k in os.environ for k in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")


def _glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):  # pragma: no cover - another C library (musl's mallopt does nothing)
        return False


def keep_frame_buffers() -> bool:
    """Tune glibc's malloc as the module docstring says; True if it was done."""
    if not sys.platform.startswith("linux") or _user_tuned() or not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - no C library to ask
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_FROM)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_FROM))
