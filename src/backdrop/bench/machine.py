"""What a benchmark was measured on: :func:`machine_info` is part of every ``backdrop bench`` result.

Absolute numbers only mean something next to the machine (CPU, usable cores, RAM, load) and the
versions of the libraries that do the work; kept apart because it measures nothing itself.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import av
import numpy as np


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were taken on: CPU, cores, RAM, load, and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    if ram_gb is None:
        try:
            import psutil

            ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
        except ImportError:
            pass
    from ..io.threaded import usable_cpus

    usable = usable_cpus()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    from .. import __version__

    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable, "ram_gb": ram_gb,
        "load_avg": load, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "backdrop": __version__,
        "numpy": np.__version__, "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "onnxruntime": _version("onnxruntime"), "ai-edge-litert": _version("ai-edge-litert"),
        "av": av.__version__, "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
    }


def describe_machine(m: dict[str, Any]) -> str:
    load = "" if not m.get("load_avg") else f", load {m['load_avg'][0]:.1f}"
    return (f"{m['cpu']}, {m['usable_cpus']} of {m['logical_cpus']} CPUs usable, {m['ram_gb']} GB RAM{load}; "
            f"Python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}, "
            f"ai-edge-litert {m['ai-edge-litert']}, av {m['av']}, opencv {m['opencv']}")
