"""Process memory: the RSS that ``/stats`` reports and handing freed heap back to the OS.

A server whose peers come and go must stay flat; these helpers let it measure that and give
glibc's cached arenas back after each peer.
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading

_malloc_trim = None  # libc's malloc_trim, looked up on first use (False: there is none)


def process_memory() -> dict[str, float]:
    """RSS in MB and the thread count of this process (for /stats and the soak test)."""
    rss = math.nan
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                    break
    except OSError:
        with contextlib.suppress(ImportError):
            import psutil

            rss = psutil.Process().memory_info().rss / 2**20
    return {"rss_mb": round(rss, 1), "threads": threading.active_count()}


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), after a peer leaves.

    A peer's decoder, encoder and pipeline allocate many large, short-lived buffers from several
    threads; glibc keeps what they free in its arenas, so without this the RSS of a server whose
    peers come and go creeps up although nothing is leaked. No-op where glibc is absent.
    """
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                import ctypes

                _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    if _malloc_trim:
        _malloc_trim(0)
