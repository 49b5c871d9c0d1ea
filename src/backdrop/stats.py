"""The few numbers every measuring part of Backdrop reports, computed in one place.

``backdrop bench`` (per-stage summaries, peak memory), the pipeline's
:class:`~backdrop.timing.StageTimer`, the live loop's :class:`~backdrop.live.LiveStats` and the
web server's per-peer statistics all report the same kinds of figure: a percentile summary of
durations in ms, frames/s over the last few seconds, and the resident memory of the process.
They used to compute them each in their own way; here they are written once, so the same word
("p95", "fps", "peak RSS") means the same number everywhere.

Everything is a plain function of its inputs (or of this process, for memory), keeps no state
and needs nothing beyond numpy; ``psutil`` is used when present, where ``/proc`` is not.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np


# -- durations ---------------------------------------------------------------------------------

def summary_ms(values: Iterable[float] | np.ndarray) -> dict[str, float]:
    """min, median, p95 and mean of samples in ms, and their number ``n`` (all 0 when empty)."""
    a = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    if a.size == 0:
        return {"min": 0.0, "median": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    return {"min": float(a.min()), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "n": int(a.size)}


def stats_ms(values: Iterable[float] | np.ndarray, frames: int | None = None) -> dict[str, float]:
    """:func:`summary_ms` plus ``per_frame`` = total / ``frames`` (default: the number of samples).

    ``per_frame`` is what a stage costs a frame on average when it does not run on every frame.
    """
    a = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    out = summary_ms(a)
    out["per_frame"] = float(a.sum() / (frames or a.size)) if a.size else 0.0
    return out


def percentile(values: Iterable[float] | np.ndarray, q: float, ndigits: int | None = None) -> float | None:
    """The ``q``-th percentile (numpy's linear interpolation), rounded to ``ndigits``; None when empty."""
    a = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64)
    if a.size == 0:
        return None
    p = float(np.percentile(a, q))
    return p if ndigits is None else round(p, ndigits)


# -- rates -------------------------------------------------------------------------------------

def recent_fps(times: Sequence[float] | Iterable[float], window: float = 2.0) -> float:
    """Frames/s over the last ``window`` seconds of ``times`` (ascending timestamps in seconds).

    The rate between the first and the last timestamp of the window, i.e. (count - 1) / span;
    0.0 until the window holds at least three timestamps spread over some time.
    """
    t = list(times)
    recent = [x for x in t if x >= t[-1] - window] if t else []
    if len(recent) > 2 and recent[-1] > recent[0]:
        return (len(recent) - 1) / (recent[-1] - recent[0])
    return 0.0


# -- memory ------------------------------------------------------------------------------------

def _proc_status_mb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB; None where absent."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) / 1024.0 if m else None


def _psutil_memory_info():
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info()


def current_rss_mb() -> float | None:
    """Resident set size of this process now, in MB (``/proc``, else psutil); None if unknown."""
    cur = _proc_status_mb("VmRSS")
    if cur is not None:
        return cur
    mi = _psutil_memory_info()
    return mi.rss / 2**20 if mi is not None else None


def peak_rss_mb() -> float | None:
    """High-water mark of this process's resident size, in MB; None if unknown.

    ``VmHWM`` on Linux (per address space); the peak working set on Windows; ``ru_maxrss``
    elsewhere (bytes on macOS, kB on other systems).
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    mi = _psutil_memory_info()
    if mi is not None and hasattr(mi, "peak_wset"):  # Windows
        return mi.peak_wset / 2**20
    try:
        import resource
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 1024.0


def rss_mb() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of this process in MB; see :func:`current_rss_mb`, :func:`peak_rss_mb`."""
    return current_rss_mb(), peak_rss_mb()
