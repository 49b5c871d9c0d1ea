"""The timed runs of ``backdrop bench``: decode alone, bare transcode, end to end, live latency.

Each function takes a clip file and returns plain numbers; none of them knows about sizes, the
configuration or how results are printed (see :mod:`.runner` and :mod:`.report`). The bare
transcode uses the very reader, transcode loop, threads and writer of ``backdrop video`` so that
``e2e / transcode`` compares the pipeline with the practical limit of moving the same video.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.video import VideoReader
from ..planar import Planar
from ..engine import Pipeline
from ..stats import stats_ms

WARMUP_FRAMES = 3


def time_decode(clip: Path, planar: bool = False) -> dict[str, Any]:
    """ms/frame of the VideoReader iteration alone: demux, decode, and the frame as the job reads
    it (``planar``: the decoder's planes, as ``backdrop video`` does for an RGB output; else the
    conversion to RGB and the rotation)."""
    samples: list[float] = []
    reader = VideoReader(clip, planar=planar)
    t = time.perf_counter()
    for _ in reader:
        now = time.perf_counter()
        samples.append((now - t) * 1000.0)
        t = time.perf_counter()
    return stats_ms(samples)


def _as_format(img: np.ndarray, pixel_format: str) -> np.ndarray:
    if pixel_format == "rgba":
        return np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    if pixel_format == "gray":
        return np.ascontiguousarray(img[..., 1])
    return img


def output_suffix(pixel_format: str) -> str:
    return ".mov" if pixel_format == "rgba" else ".mp4"


def bare_transcode(clip: Path, dst: Path, *, crf: int = 20, preset: str = "veryfast", pixel_format: str = "rgb",
                   keep_audio: bool = True, limit: int | None = None, overlap: bool = True) -> dict[str, Any]:
    """Decode and re-encode ``clip`` exactly as ``backdrop video`` moves it, with no pipeline.

    The same reader (for ``rgb``: the decoder's YUV planes, as ``process_video`` reads them), the
    same transcode loop and threads (``overlap``: decode ahead, encode behind), the same
    CRF/preset/container, timestamps and audio copy; ``pixel_format`` matches the pipeline's output (an
    opaque alpha or a grey plane is added so the encoder is the same). This is the practical limit
    of a file job, which the end-to-end ratio is measured against. ``limit`` stops after that many
    frames (for warming up, not for measuring).
    """
    from ..io.transcode import EncodeSettings, queue_depth, transcode

    reader = VideoReader(clip, planar=pixel_format == "rgb")
    settings = EncodeSettings(rate=reader.rate, time_base=reader.time_base, pixel_format=pixel_format, crf=crf,
                              preset=preset, audio_from=clip if keep_audio and reader.has_audio else None)

    def identity(frames):
        for n, item in enumerate(frames):
            if limit is not None and n >= limit:
                return
            yield item.pts, item.image if isinstance(item.image, Planar) else _as_format(item.image, pixel_format)

    try:
        stats = transcode(reader, dst, settings, identity, overlap=overlap, depth=queue_depth(*reader.size),
                          empty=InputError(f"video has no decodable frames: {Path(clip).name}"))
    finally:
        reader.close()
    return {"frames": stats.frames, "seconds": stats.seconds, "fps": stats.fps}


def warm_up(pipe: Pipeline, clip: Path, n: int = WARMUP_FRAMES) -> None:
    """Run a few frames so one-off costs (allocations, delegate set-up) are not in the numbers."""
    reader = VideoReader(clip)
    try:
        for i, f in enumerate(reader):
            if i >= n:
                break
            pipe(f.image)
    finally:
        reader.close()
    pipe.reset()
    pipe.timer.reset()


def end_to_end(clip: Path, dst: Path, pipe: Pipeline, *, crf: int = 20, preset: str = "veryfast",
               keep_audio: bool = True) -> dict[str, Any]:
    """``process_video`` on ``clip`` with ``pipe`` (the ``backdrop video`` path), timer reset first."""
    from ..process import process_video

    pipe.reset()
    pipe.timer.reset()
    stats = process_video(clip, dst, pipeline=pipe, crf=crf, preset=preset, quiet=True, keep_audio=keep_audio)
    return {"frames": int(stats["frames"]), "seconds": float(stats["seconds"]), "fps": float(stats["fps"]),
            "inferences": int(stats.get("inferences", 0)),
            "skipped_fraction": float(stats.get("skipped_fraction", 0.0))}


def live_latency(clip: Path, pipe: Pipeline, limit: int | None = None) -> dict[str, Any]:
    """Time from a frame entering a live pipeline (``pipe(frame)``) to its composite leaving it."""
    pipe.reset()
    pipe.timer.reset()
    reader = VideoReader(clip)
    samples: list[float] = []
    try:
        for i, f in enumerate(reader):
            if limit is not None and i >= limit:
                break
            img = f.image
            t0 = time.perf_counter()
            out = pipe(img)
            samples.append((time.perf_counter() - t0) * 1000.0)
            if out is None:  # pragma: no cover - a live pipeline must answer every frame
                raise RuntimeError("live pipeline returned no composite")
    finally:
        reader.close()
    s = stats_ms(samples)
    return {"p50_ms": s["median"], "p95_ms": s["p95"], "min_ms": s["min"], "mean_ms": s["mean"],
            "frames": s["n"], "max_fps": 1000.0 / s["median"] if s["median"] else 0.0}
