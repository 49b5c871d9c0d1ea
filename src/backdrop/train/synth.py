"""Training-sample synthesis: people x backgrounds, warped and augmented, as a dataset.

Why synthesis: a few hundred labelled people are too few backgrounds for a network to learn
"person" rather than "this photo's room". Cutting each person out with its mask and compositing
onto many backgrounds (people x backgrounds) multiplies the data, and the geometric warps
(:mod:`.geometry`) multiply poses; photometric augmentation (:mod:`.photometric`) stands in for
webcams and codecs. Why its own module: this is where those pieces are combined into one
reproducible sample per (seed, epoch, index), apart from how data is found (:mod:`.data`).

Pure NumPy/OpenCV (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from . import TrainError
from .geometry import GeometryConfig, random_geometry, random_tps_maps, tps_warp, warp
from .photometric import PhotoConfig, photometric


def random_background(bg: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of a background, scaled to cover the output (never stretched), maybe flipped."""
    H, W = out_hw
    h, w = bg.shape[:2]
    s = max(H / h, W / w) * float(rng.uniform(1.0, 1.6))
    nh, nw = max(H, int(np.ceil(h * s))), max(W, int(np.ceil(w * s)))
    big = cv2.resize(bg, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, nh - H + 1))
    x = int(rng.integers(0, nw - W + 1))
    crop = big[y:y + H, x:x + W]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``I = a*F + (1-a)*B`` in float, back to uint8."""
    a = alpha[..., None].astype(np.float32)
    return np.clip(a * fg.astype(np.float32) + (1 - a) * bg.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    """How training samples are made from labelled people and backgrounds."""

    height: int = 256
    width: int = 256
    synth: float = 0.7          # probability of compositing onto another background
    consistency: bool = False   # also return a second photometric view (for the consistency loss)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    photo: PhotoConfig = field(default_factory=PhotoConfig)


class SynthDataset:
    """People x backgrounds with warps and photometric augmentation; a ``torch`` map-style
    dataset by protocol (``__len__``/``__getitem__``), without importing torch.

    Sample ``i`` of epoch ``e`` is a pure function of (seed, e, i): runs are reproducible and a
    resumed run sees the same data it would have seen. ``teacher`` (optional) is a callable
    RGB -> float32 probability at the same size, run on the final augmented image for the
    distillation loss.
    """

    def __init__(self, people: list[tuple[np.ndarray, np.ndarray]], backgrounds: list[np.ndarray],
                 cfg: SynthConfig | None = None, *, length: int | None = None, seed: int = 0, teacher=None):
        if not people:
            raise TrainError("no labelled training images")
        self.people = people
        self.backgrounds = backgrounds
        self.cfg = cfg or SynthConfig()
        self.length = int(length or len(people))
        self.seed = int(seed)
        self.epoch = 0
        self.teacher = teacher

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        cfg = self.cfg
        out_hw = (cfg.height, cfg.width)
        img, alpha = self.people[int(i) % len(self.people)]
        if rng.random() < cfg.geometry.tps:
            maps = random_tps_maps(alpha.shape[0], alpha.shape[1], rng, cfg.geometry.tps_strength)
            img, alpha = tps_warp([img, alpha], maps)
        # geometry is planned on the (warped) source it will move, so border contacts are exact
        M, _ = random_geometry(alpha, out_hw, rng, cfg.geometry)
        fg, a = warp([img, alpha], M, out_hw)
        if self.backgrounds and rng.random() < cfg.synth:
            bg = random_background(self.backgrounds[int(rng.integers(len(self.backgrounds)))], out_hw, rng)
            if rng.random() < 0.3:  # foreground lit differently from the room: don't learn seams
                fg = np.clip(fg.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
            base = composite(fg, a, bg)
        else:
            base = fg
        sample = {"image": photometric(base, rng, cfg.photo), "alpha": np.clip(a, 0, 1).astype(np.float32)}
        if cfg.consistency:
            sample["image2"] = photometric(base, rng, cfg.photo)
        if self.teacher is not None:
            sample["teacher"] = np.asarray(self.teacher(sample["image"]), np.float32)
        return sample
