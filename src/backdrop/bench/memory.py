"""Peak memory for ``backdrop bench``, measured in a clean subprocess.

The benchmark's own process has decoded, encoded and run several pipelines by the time it asks,
so its high-water mark says nothing about ``backdrop video``. :func:`peak_memory` starts
``python -m backdrop.bench --memory-child`` (see :mod:`backdrop.bench.__main__`), which runs the
end-to-end job once and reports its RSS after model load and at the end.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..engine import Pipeline, PipelineOptions
from ..stats import rss_mb
from .measure import output_suffix


def peak_memory(clip: Path, options: PipelineOptions, background: Any, *, crf: int = 20,
                preset: str = "veryfast", keep_audio: bool = True, timeout: float = 1800) -> dict[str, Any]:
    """Peak RSS of a fresh subprocess that runs the end-to-end job on ``clip``.

    ``baseline_mb`` is the resident size after imports and model load, before the first frame;
    ``peak_mb`` the high-water mark at the end. Their difference is what processing the video costs.
    """
    payload = base64.b64encode(pickle.dumps({"clip": str(clip), "options": options, "background": background,
                                             "crf": crf, "preset": preset, "keep_audio": keep_audio})).decode()
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[2])  # this very copy of backdrop, installed or not
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "backdrop.bench", "--memory-child"], input=payload,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memory_child() -> int:
    job = pickle.loads(base64.b64decode(sys.stdin.read()))
    from ..process import process_video

    pipe = Pipeline(background=job["background"], options=job["options"])
    baseline, _ = rss_mb()
    clip = Path(job["clip"])
    with tempfile.TemporaryDirectory(prefix="backdrop-bench-mem-") as tmp:
        dst = Path(tmp) / ("out" + output_suffix(pipe.pixel_format))
        stats = process_video(clip, dst, pipeline=pipe, crf=job["crf"], preset=job["preset"], quiet=True,
                              keep_audio=job.get("keep_audio", True))
    pipe.close()
    _, peak = rss_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak,
                      "processing_mb": (peak - baseline) if peak is not None and baseline is not None else None,
                      "frames": int(stats["frames"])}))
    return 0
