"""Training pairs for ``backdrop train sr``: full-size luma beside what a call delivers of it.

Each clip gives ``windows_per_clip`` runs of ``frames_per_window`` consecutive frames, spread
over its length; each photo a slow pan (the crop moves a few pixels a frame, so the encoder
predicts from the previous frame as it does for a person sitting still). Every run is sent
through :func:`backdrop.superres.degrade.call_degrade` with a codec and a bit rate drawn from the
config, and ``keep_every``-th decoded frame is kept: the full-size Y plane (the target) and the
decoded half-size Y plane (the input), both BT.601 limited range, as the runtime sees them.

The draw is a pure function of (seed, source name, window), so a resumed or repeated run
rebuilds the same pairs; the result is cached in the run folder (``pairs.npz``). Windows are
split into train and validation by a hash of their name; held-out files (``data.holdout``) are
never read at all.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.image import IMAGE_SUFFIXES, read_image
from ..superres.degrade import call_degrade, crop_even
from . import TrainError
from .sr_config import SRDataConfig

log = logging.getLogger(__name__)
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass
class Pairs:
    """Full-size Y planes (targets) and decoded half-size Y planes (inputs), uint8, paired."""

    high: list[np.ndarray]
    low: list[np.ndarray]
    names: list[str]


def _files(sources: list[str], suffixes: tuple[str, ...], holdout: set[str]) -> list[Path]:
    out: list[Path] = []
    for s in map(Path, sources):
        if not s.exists():
            raise TrainError(f"training data not found: {s}")
        found = sorted(p for p in s.rglob("*") if p.suffix.lower() in suffixes) if s.is_dir() else [s]
        out += [p for p in found if p.name not in holdout and not p.name.startswith(".")]
    return out


def _fit(rgb: np.ndarray, d: SRDataConfig) -> np.ndarray:
    h, w = rgb.shape[:2]
    k = min(1.0, d.max_width / w, d.max_height / h)
    if k < 1.0:
        rgb = cv2.resize(rgb, (int(w * k), int(h * k)), interpolation=cv2.INTER_AREA)
    return crop_even(rgb, 4)


def _clip_windows(path: Path, d: SRDataConfig) -> list[tuple[str, list[np.ndarray]]]:
    import av

    with av.open(str(path)) as box:
        total = box.streams.video[0].frames or 0
        if not total:  # containers that declare no count (Matroska): count once
            total = sum(1 for _ in box.decode(video=0))
    with av.open(str(path)) as box:
        n, k = d.frames_per_window, d.windows_per_clip
        starts = [int(round(i * max(0, total - n) / max(1, k - 1))) for i in range(k)] if k > 1 else [0]
        wanted = {s + j: i for i, s in enumerate(starts) for j in range(n)}
        windows: list[list[np.ndarray]] = [[] for _ in starts]
        for idx, frame in enumerate(box.decode(video=0)):
            if idx in wanted:
                windows[wanted[idx]].append(_fit(frame.to_ndarray(format="rgb24"), d))
            if idx >= max(wanted):
                break
    return [(f"{path.stem}#{i}", w) for i, w in enumerate(windows) if len(w) >= 2]


def _photo_pan(path: Path, d: SRDataConfig, rng: np.random.Generator) -> tuple[str, list[np.ndarray]]:
    img = read_image(path)
    h, w = img.shape[:2]
    ch, cw = min(h, d.max_height), min(w, d.max_width)
    ch, cw = ch - ch % 4, cw - cw % 4
    n = d.photo_frames
    step = rng.uniform(-3, 3, size=2)
    y0 = rng.uniform(0, max(0, h - ch - abs(step[0]) * n)) + (abs(step[0]) * n if step[0] < 0 else 0)
    x0 = rng.uniform(0, max(0, w - cw - abs(step[1]) * n)) + (abs(step[1]) * n if step[1] < 0 else 0)
    frames = []
    for t in range(n):
        # a sub-pixel pan, as a slowly moving camera gives: warpAffine with a translation
        m = np.float32([[1, 0, -(x0 + step[1] * t)], [0, 1, -(y0 + step[0] * t)]])
        frames.append(cv2.warpAffine(img, m, (cw, ch), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT))
    return path.stem, frames


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _draw(name: str, seed: int) -> float:
    return (zlib.crc32(f"val:{seed}:{name}".encode()) % 10000) / 10000.0


def val_names(names: list[str], fraction: float, seed: int) -> set[str]:
    """The runs held out for validation: those whose hash falls under ``fraction``, and at least
    one (the lowest draw) when there are two runs or more and ``fraction`` > 0."""
    chosen = {n for n in names if _draw(n, seed) < fraction}
    if not chosen and fraction > 0 and len(names) > 1:
        chosen = {min(names, key=lambda n: _draw(n, seed))}
    return chosen


def build_pairs(d: SRDataConfig, seed: int, *, quiet: bool = True) -> tuple[Pairs, Pairs]:
    """(train, val) pairs from the config's clips and photos, degraded the call's way."""
    holdout = set(d.holdout)
    runs: list[tuple[str, list[np.ndarray]]] = []
    for path in _files(d.clips, VIDEO_SUFFIXES, holdout):
        runs += _clip_windows(path, d)
    for path in _files(d.photos, tuple(IMAGE_SUFFIXES), holdout):
        runs.append(_photo_pan(path, d, _rng(seed, path.name)))
    if not runs:
        raise TrainError("data.clips and data.photos give no frames to train on")
    train, val = Pairs([], [], []), Pairs([], [], [])
    held = val_names([name for name, _ in runs], d.val_fraction, seed)
    for name, frames in runs:
        rng = _rng(seed, name)
        codec = d.codecs[int(rng.integers(len(d.codecs)))]
        kbps = float(np.exp(rng.uniform(np.log(d.kbps_min), np.log(d.kbps_max))))
        decoded = call_degrade(frames, codec, kbps)
        part = val if name in held else train
        for i in range(1, len(frames), d.keep_every):  # frame 0 is the key frame: kept less
            hi = cv2.cvtColor(frames[i], cv2.COLOR_RGB2YUV_I420)[:frames[i].shape[0]]
            lo = decoded[i][:frames[i].shape[0] // 2]
            part.high.append(np.ascontiguousarray(hi))
            part.low.append(np.ascontiguousarray(lo))
            part.names.append(f"{name}/{i}:{codec}@{kbps:.0f}")
        if not quiet:
            log.warning("sr data: %s: %s at %.0f kbit/s", name, codec, kbps)
    return train, val


def save_pairs(path: Path, train: Pairs, val: Pairs) -> None:
    arrays = {}
    for tag, p in (("train", train), ("val", val)):
        for i, (hi, lo) in enumerate(zip(p.high, p.low)):
            arrays[f"{tag}_hi_{i}"], arrays[f"{tag}_lo_{i}"] = hi, lo
        arrays[f"{tag}_names"] = np.array(p.names)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def load_pairs(path: Path) -> tuple[Pairs, Pairs]:
    with np.load(path) as z:
        out = []
        for tag in ("train", "val"):
            names = [str(n) for n in z[f"{tag}_names"]]
            out.append(Pairs([z[f"{tag}_hi_{i}"] for i in range(len(names))],
                             [z[f"{tag}_lo_{i}"] for i in range(len(names))], names))
    return out[0], out[1]


def sample_batch(pairs: Pairs, n: int, patch: int, radius: int, rng: np.random.Generator):
    """``n`` random (low patch with ``radius`` context, high patch) pairs, flipped/transposed
    (the 8 symmetries of the square: block codecs are symmetric enough under them)."""
    size = patch + 2 * radius
    lows = np.empty((n, size, size), np.uint8)
    highs = np.empty((n, 2 * patch, 2 * patch), np.uint8)
    for k in range(n):
        while True:
            i = int(rng.integers(len(pairs.low)))
            lo, hi = pairs.low[i], pairs.high[i]
            if lo.shape[0] >= size and lo.shape[1] >= size:
                break
        y, x = int(rng.integers(0, lo.shape[0] - size + 1)), int(rng.integers(0, lo.shape[1] - size + 1))
        a = lo[y:y + size, x:x + size]
        b = hi[2 * (y + radius):2 * (y + radius + patch), 2 * (x + radius):2 * (x + radius + patch)]
        t = int(rng.integers(8))
        if t & 1:
            a, b = a[:, ::-1], b[:, ::-1]
        if t & 2:
            a, b = a[::-1], b[::-1]
        if t & 4:
            a, b = a.T, b.T
        lows[k], highs[k] = a, b
    return lows, highs


__all__ = ["Pairs", "build_pairs", "val_names", "load_pairs", "sample_batch", "save_pairs"]
