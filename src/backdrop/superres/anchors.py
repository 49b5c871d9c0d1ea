"""The upscale benchmark: our network beside the classical anchors, on the held-out clip.

Every method gets the same input, a Y plane as a viewer decodes it after the call-like
degradation (:mod:`.degrade`: area shrink x2, then H.264 or VP8 at a call bit rate), and is
scored against the original full-size Y plane: **Y-PSNR** (the usual super-resolution measure)
and **SSIM** (Wang et al. 2004: Gaussian window, sigma 1.5, on Y). The anchors:

- ``bilinear``, ``bicubic``, ``lanczos``: OpenCV's ``INTER_LINEAR`` / ``INTER_CUBIC`` /
  ``INTER_LANCZOS4`` (what a browser, a player or most call clients do);
- ``fsr1``: AMD FSR 1, EASU then RCAS at 0.2 stops (:mod:`.fsr`), the strong classical shader;
  ``easu`` is its upscale alone (RCAS trades PSNR for perceived sharpness);
- ``ours``: the shipped ``sr-x2`` network (:class:`~.frames.Upscaler`), as ``backdrop upscale``
  runs it on a video (the I420 path: the Y plane through the network).

Speed is ms per 640x360 -> 1280x720 frame in this process, for the RGB API (``upscale(frame)``),
the I420 path and each inference backend (ONNX Runtime, OpenCV's dnn, the NumPy reference), with
the load average beside it (two shared cores: the load changes the numbers, not the ranking).
The held-out clip (``talking-portrait-720x1280.mp4``) is never read by ``backdrop train sr``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from .degrade import call_degrade, crop_even
from .frames import Upscaler
from .network import DEFAULT_BACKEND
from .fsr import fsr1_2x

HELD_OUT = ("clips", "talking-portrait-720x1280.mp4")
METHODS = ("bilinear", "bicubic", "lanczos", "easu", "fsr1", "ours")
CALLS = (("h264", 500.0), ("vp8", 500.0))
"""500 kbit/s is libwebrtc's target bit rate for a 640x360 layer (its simulcast table: min 150,
target 500, max 700); the held-out clip at half size is 360x640, the same pixel count."""
_CV = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}


def method(name: str, upscaler: Upscaler | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 Y plane (H, W) -> uint8 (2H, 2W) by ``name`` (one of :data:`METHODS`)."""
    if name in _CV:
        return lambda y: cv2.resize(y, (y.shape[1] * 2, y.shape[0] * 2), interpolation=_CV[name])
    if name == "easu":
        return lambda y: fsr1_2x(y, sharpen=False)
    if name == "fsr1":
        return fsr1_2x
    if name == "ours":
        up = upscaler or Upscaler()
        return up.luma
    raise ValueError(f"unknown upscale method {name!r}: one of {', '.join(METHODS)}")


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * float(np.log10(255.0 ** 2 / max(mse, 1e-10)))


def read_frames(clip: Path, count: int) -> list[np.ndarray]:
    import av

    with av.open(str(clip)) as box:
        return [crop_even(f.to_ndarray(format="rgb24")) for _, f in zip(range(count), box.decode(video=0))]


def quality(clip: Path, *, frames: int = 60, every: int = 4, calls=CALLS, methods=METHODS,
            upscaler: Upscaler | None = None) -> dict[str, Any]:
    """Y-PSNR and SSIM of each method per call setting, over every ``every``-th of ``frames``
    frames (the first, a key frame, skipped), and their mean over the settings."""
    originals = read_frames(clip, frames)
    fns = {m: method(m, upscaler) for m in methods}
    rows: dict[str, dict[str, Any]] = {}
    for codec, kbps in calls:
        decoded = call_degrade(originals, codec, kbps)
        scores: dict[str, list[tuple[float, float]]] = {m: [] for m in methods}
        for i in range(1, len(originals), every):
            truth = cv2.cvtColor(originals[i], cv2.COLOR_RGB2YUV_I420)[:originals[i].shape[0]]
            low = decoded[i][:truth.shape[0] // 2]
            for m, fn in fns.items():
                out = fn(low)
                scores[m].append((psnr(out, truth), ssim(out, truth)))
        rows[f"{codec}@{kbps:g}"] = {m: {"psnr": float(np.mean([s[0] for s in v])), "ssim": float(np.mean([s[1] for s in v]))}
                                     for m, v in scores.items()}
    mean = {m: {k: float(np.mean([r[m][k] for r in rows.values()])) for k in ("psnr", "ssim")} for m in methods}
    h, w = originals[0].shape[:2]
    return {"clip": clip.name, "size": [w, h], "frames_scored": len(range(1, len(originals), every)),
            "calls": rows, "mean": mean}


def _interleaved(fns: dict[str, Callable[[], Any]], reps: int) -> dict[str, dict[str, float]]:
    """min and median ms of each function over ``reps`` rounds, the functions taking turns in
    every round: on a shared machine the load changes by the second, and taking turns gives
    each the same share of it (sequential runs would compare different minutes)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000.0)
    return {k: {"min": round(min(v), 2), "median": round(float(np.median(v)), 2)} for k, v in times.items()}


def speed(frame: np.ndarray, *, reps: int = 30, methods=METHODS, backends=("opencv", "onnxruntime"),
          numpy_reps: int = 2) -> dict[str, Any]:
    """ms per frame upscaling RGB ``frame`` x2 (min and median of ``reps``, all candidates taking
    turns), per method and per backend of the network; with the load average before and after."""
    from ..planar import Planar

    load_before = os.getloadavg()
    y = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)[:frame.shape[0]]
    planar = Planar.from_rgb(frame) if frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0 else None
    fns: dict[str, Callable[[], Any]] = {}
    for m in methods:
        if m in _CV:
            fns[f"method:{m}"] = (lambda fn=method(m): fn(y))
    ups = {b: Upscaler(backend=b) for b in backends}
    for b, up in ups.items():
        fns[f"{b}:net"] = lambda up=up: up.net.residual(y)
        fns[f"{b}:rgb"] = lambda up=up: up.rgb(frame)
        if planar is not None:
            fns[f"{b}:planar"] = lambda up=up: up.planar(planar)
    got = _interleaved(fns, reps)
    slow = {f"method:{m}": (lambda fn=method(m): fn(y)) for m in methods if m not in _CV and m != "ours"}
    numpy_up = Upscaler(backend="numpy")
    slow.update({"numpy:net": lambda: numpy_up.net.residual(y), "numpy:rgb": lambda: numpy_up.rgb(frame)})
    got.update(_interleaved(slow, numpy_reps))
    out: dict[str, Any] = {"size": [frame.shape[1], frame.shape[0]], "methods": {}, "ours": {}}
    for key, v in got.items():
        kind, name = key.split(":")
        if kind == "method":
            out["methods"][name] = v
        else:
            out["ours"].setdefault(kind, {})[name] = v
    out["load_before"], out["load_after"] = [round(x, 2) for x in load_before], [round(x, 2) for x in os.getloadavg()]
    return out


def markdown(q: dict[str, Any], sp: dict[str, Any] | None = None, page_ms: dict[str, float] | None = None) -> str:
    """The anchor table: one row per method, Y-PSNR / SSIM per call setting and their mean, the
    gain over bicubic, and ms per frame (Python; the page's pass where measured)."""
    calls = list(q["calls"])
    head = ["method", *[f"{c} Y-PSNR / SSIM" for c in calls], "mean Y-PSNR", "vs bicubic", "Python ms/frame"]
    if page_ms:
        head.append("page ms/frame")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    bicubic = q["mean"]["bicubic"]["psnr"] if "bicubic" in q["mean"] else None
    for m, mean in q["mean"].items():
        cells = [f"**{m}**" if m == "ours" else m]
        cells += [f"{q['calls'][c][m]['psnr']:.2f} / {q['calls'][c][m]['ssim']:.4f}" for c in calls]
        cells.append(f"{mean['psnr']:.2f}")
        cells.append(f"{mean['psnr'] - bicubic:+.2f} dB" if bicubic is not None else "")
        if sp is None:
            cells.append("")
        elif m == "ours":
            row = sp["ours"][DEFAULT_BACKEND]
            cells.append(f"{row['rgb']['median']:.1f} RGB / {row['planar']['median']:.1f} I420 (median; min "
                         f"{row['rgb']['min']:.1f} / {row['planar']['min']:.1f})" if "planar" in row
                         else f"{row['rgb']['median']:.1f} RGB (median; min {row['rgb']['min']:.1f})")
        else:
            cells.append(f"{sp['methods'][m]['median']:.1f} (Y only)")
        if page_ms:
            cells.append(f"{page_ms[m]:.1f}" if m in page_ms else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["CALLS", "HELD_OUT", "METHODS", "markdown", "method", "psnr", "quality", "read_frames", "speed", "ssim"]
