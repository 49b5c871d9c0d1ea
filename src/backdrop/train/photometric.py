"""Photometric augmentation: colour, gamma, blur, noise and JPEG.

Why its own module: these transforms stand in for webcams and codecs and are independent of
where a sample's pixels came from (used by :class:`.synth.SynthDataset`, configured by
``augment.photo`` in the training config). Pure NumPy/OpenCV (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class PhotoConfig:
    brightness: float = 0.25   # multiplicative, +/-
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 8.0           # degrees, +/-
    gamma: tuple[float, float] = (0.7, 1.5)
    blur: float = 0.25         # probability; sigma 0.3..1.5 px
    noise: float = 0.3         # probability; sigma 2..8 levels
    jpeg: float = 0.3          # probability; quality 30..90


def photometric(img: np.ndarray, rng: np.random.Generator, cfg: PhotoConfig | None = None) -> np.ndarray:
    """Colour, gamma, blur, noise and JPEG, each random: what webcams and codecs do to a frame."""
    cfg = cfg or PhotoConfig()
    x = img.astype(np.float32) / 255.0
    # colour: hue and saturation in HSV, then brightness and contrast
    if cfg.hue or cfg.saturation:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue)) % 360.0
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation), 0, 1)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    x = np.clip(x, 0, 1) ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.blur:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.3, 1.5)))
    out = x * 255.0
    if rng.random() < cfg.noise:
        out = out + rng.normal(0.0, rng.uniform(2.0, 8.0), out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out
