"""Is memory flat over a long file job? One ``backdrop video`` run on a long clip, its RSS sampled.

    python benchmarks/memory_flat.py                    # 10 minutes of 720p video (18000 frames)
    python benchmarks/memory_flat.py --minutes 2 --size 1280x720 --background blur

The clip is the shared office-desk clip scaled to ``--size`` and played forwards and backwards
(ping-pong, so there is no cut) until it lasts ``--minutes`` of video at 30 fps; it is written
once into a temporary folder with x264 ultrafast. Then ``backdrop video`` runs on it in a child
process, and the child's resident memory (``/proc/PID/status`` VmRSS) is read every second. The
report: RSS after the first 10 % of the run, at the end, its maximum, and the slope of a
straight-line fit over the last 90 % (MB per minute), and RSS at half time. A leak of one
frame's worth a second shows as hundreds of MB per minute; flat memory as a slope near zero. The
stage timer keeps its last 10000 samples per stage (``timing.py``), about 6 MB once full, so RSS
rises that much over the first 10000 frames and is flat after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from backdrop.bench import shared_data_dir  # noqa: E402
from backdrop.bench.clips import parse_size  # noqa: E402
from backdrop.io.video import VideoReader, VideoWriter  # noqa: E402


def long_clip(dst: Path, size: tuple[int, int], frames: int) -> None:
    """``frames`` frames of the office clip at ``size``, ping-pong, 30 fps."""
    import cv2

    src = [f.image for f in VideoReader(shared_data_dir() / "clips" / "office-desk-960x540.mp4")]
    src = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in src]
    loop = src + src[-2:0:-1]
    writer = VideoWriter(dst, width=size[0], height=size[1], rate=Fraction(30), time_base=Fraction(1, 30),
                         crf=23, preset="ultrafast")
    for i in range(frames):
        writer.write(loop[i % len(loop)], i)
    writer.close()


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run(clip: Path, out: Path, background: str, every: float = 1.0) -> dict:
    cmd = [sys.executable, "-m", "backdrop", "video", str(clip), str(out), "-b", background, "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, env=env)
    samples: list[tuple[float, float]] = []
    while child.poll() is None:
        mb = rss_mb(child.pid)
        if mb is not None:
            samples.append((time.perf_counter() - t0, mb))
        time.sleep(every)
    if child.returncode != 0:
        raise SystemExit(f"backdrop video failed with exit {child.returncode}")
    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    tail = t >= 0.1 * t[-1]
    slope = float(np.polyfit(t[tail] / 60.0, m[tail], 1)[0]) if tail.sum() > 2 else 0.0
    second = t >= 0.5 * t[-1]
    return {"seconds": float(t[-1]), "samples": len(samples), "rss_at_10pct_mb": float(m[tail][0]),
            "rss_at_half_mb": float(m[second][0]), "rss_end_mb": float(m[-1]), "rss_max_mb": float(m.max()),
            "slope_mb_per_min": slope,
            "trace": [[round(a, 1), round(b, 1)] for a, b in samples[:: max(1, len(samples) // 60)]]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the clip, minutes of video at 30 fps")
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--background", default=str(shared_data_dir() / "backgrounds" / "porch-691330_1280.jpg"))
    ap.add_argument("--json-out", default=None)
    args = ap.parse_args(argv)
    _, size = parse_size(args.size)
    frames = int(args.minutes * 60 * 30)
    if frames < 30:
        ap.error("--minutes must give at least one second of video")
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "long.mp4"
        print(f"writing {frames} frames at {size[0]}x{size[1]} ...", file=sys.stderr)
        long_clip(clip, size, frames)
        load = os.getloadavg()
        result = run(clip, Path(tmp) / "out.mp4", args.background)
        result.update(frames=frames, size=list(size), load_before=list(load), load_after=list(os.getloadavg()))
    print(f"{frames} frames at {size[0]}x{size[1]} in {result['seconds']:.0f} s: RSS {result['rss_at_10pct_mb']:.0f} MB "
          f"after 10 % -> {result['rss_at_half_mb']:.1f} MB at half -> {result['rss_end_mb']:.1f} MB at the end "
          f"(max {result['rss_max_mb']:.0f} MB), "
          f"slope {result['slope_mb_per_min']:+.2f} MB/min; load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
