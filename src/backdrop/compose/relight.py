"""Relighting the person to the scene behind them: statistics, the correction, and applying it.

A person cut out of one room and put over another photo looks pasted on when their exposure,
white balance, contrast or colourfulness disagree with it. Image harmonization (Reinhard et al.,
"Color Transfer between Images", 2001; DoveNet, Cong et al. CVPR 2020; Harmonizer, Ke et al.
ECCV 2022; PCT-Net, Guerreiro et al. CVPR 2023) moves the foreground's colours toward the
background's. Harmonizer's observation is the one used here: a few *global* filter values
(exposure, temperature, tint, contrast, saturation) are enough, and they can be estimated from
low-resolution statistics of the person and the background.

Everything is measured in linear light (sRGB decoded): exposure is a gain in stops, white
balance a pair of channel-gain ratios (von Kries), as a camera applies them.

- :class:`Stats`: weighted statistics of a set of pixels: mean log2 luminance (``lum``), the
  grey-world white balance as log2 ratios of the channel means (``warm`` = R/B, ``green`` =
  G against R and B), the spread of log2 luminance (``spread``) and the mean chroma relative to
  luminance (``chroma``).
- :class:`Look`: a correction, every field 0 for none: ``exposure`` (stops), ``warm`` and
  ``green`` (log2 gain ratios), ``contrast`` and ``saturation`` (log2 of the factor applied to
  the spread of log luminance and to chroma).
- :func:`apply_look`: the correction on RGB uint8 pixels.

The estimate itself (how far to move the person, from these statistics) is in
:mod:`backdrop.compose.relight_estimate`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import cv2
import numpy as np

from ..resize import downscale

LUMA = np.float32([0.2126, 0.7152, 0.0722])  # linear-light luminance of sRGB primaries (Rec. 709)
EPS = 1.0 / 1024  # linear-light floor before a logarithm (about level 1 of 255 after sRGB decoding)
STATS_SIDE = 96  # statistics are taken at this long side: global numbers need no more


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


TO_LINEAR = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255).astype(np.float32)
_ENCODE_BINS = 4096
_TO_SRGB = np.clip(np.round(255 * np.where(
    (x := np.arange(_ENCODE_BINS + 1, dtype=np.float64) / _ENCODE_BINS) <= 0.0031308, 12.92 * x,
    1.055 * np.power(x, 1 / 2.4) - 0.055)), 0, 255).astype(np.uint8)


def to_linear(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> linear light float32 in [0, 1] (the sRGB transfer curve)."""
    return TO_LINEAR[rgb]


def to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light float32 (clipped to [0, 1]) -> sRGB uint8, through a 4096-step table
    (at most one level from the exact curve above level 10; the dark end is exact)."""
    idx = np.clip(linear * _ENCODE_BINS + 0.5, 0, _ENCODE_BINS).astype(np.int32)
    return _TO_SRGB[idx]


@dataclass(frozen=True)
class Stats:
    """Weighted statistics of pixels (see the module docstring). ``weight`` is the weights' sum."""

    lum: float = 0.0
    warm: float = 0.0
    green: float = 0.0
    spread: float = 0.0
    chroma: float = 0.0
    weight: float = 0.0

    def vector(self) -> np.ndarray:
        return np.float32([self.lum, self.warm, self.green, self.spread, self.chroma])


@dataclass(frozen=True)
class Look:
    """A correction of the person; every field 0 leaves them as they are."""

    exposure: float = 0.0
    warm: float = 0.0
    green: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0

    def vector(self) -> np.ndarray:
        return np.float32([getattr(self, f.name) for f in fields(self)])

    @classmethod
    def from_vector(cls, v) -> "Look":
        return cls(*(float(x) for x in v))

    def scaled(self, k: float) -> "Look":
        return Look.from_vector(self.vector() * k)

    def is_identity(self, tol: float = 1e-3) -> bool:
        return bool(np.all(np.abs(self.vector()) < tol))


def small_pair(image: np.ndarray, weight: np.ndarray, side: int = STATS_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (RGB uint8) and ``weight`` (float32 HxW, any size) both at long side ``side``."""
    h, w = image.shape[:2]
    k = min(1.0, side / max(h, w))
    sw, sh = max(1, round(w * k)), max(1, round(h * k))
    return downscale(image, sw, sh), downscale(np.asarray(weight, np.float32), sw, sh)


def measure(image: np.ndarray, weight: np.ndarray) -> Stats:
    """:class:`Stats` of RGB uint8 ``image`` with per-pixel ``weight`` (float32, same HxW);
    a zero ``weight`` sum gives ``Stats()`` (weight 0)."""
    wsum = float(weight.sum())
    if wsum <= 1e-6:
        return Stats()
    w = (weight / wsum).reshape(-1)
    lin = to_linear(image).reshape(-1, 3)
    y = np.maximum(lin @ LUMA, EPS)
    logy = np.log2(y)
    lum = float(w @ logy)
    spread = float(np.sqrt(max(0.0, float(w @ (logy - lum) ** 2))))
    mean = np.maximum(w @ lin, EPS)
    warm = float(np.log2(mean[0] / mean[2]))
    green = float(np.log2(mean[1]) - 0.5 * (np.log2(mean[0]) + np.log2(mean[2])))
    chroma = float(w @ (np.abs(lin - y[:, None]).sum(axis=1) / y))
    return Stats(lum, warm, green, spread, chroma, wsum)


def channel_gains(look: Look) -> np.ndarray:
    """The per-channel linear gains of ``look``'s exposure and white balance (warm tilts R
    against B, green G against both; their log2 gains sum to zero, so they keep grey's level)."""
    log_gain = np.float32([look.warm / 2 - look.green / 3, 2 * look.green / 3, -look.warm / 2 - look.green / 3])
    return np.exp2(log_gain + look.exposure).astype(np.float32)


def apply_look_linear(lin: np.ndarray, look: Look, pivot: float) -> np.ndarray:
    """``look`` on linear light (float32 HxWx3, changed in place and returned): channel gains,
    then contrast as a power of luminance about ``pivot`` (the person's mean luminance after the
    gains), then saturation as a scale of each channel's distance from luminance."""
    lin *= channel_gains(look)
    if abs(look.contrast) > 1e-4 or abs(look.saturation) > 1e-4:
        y = np.maximum(cv2.transform(lin, LUMA[None, :]), EPS)
        if abs(look.contrast) > 1e-4:
            y_new = pivot * np.power(y / pivot, float(np.exp2(look.contrast)))
            lin *= (y_new / y)[..., None]
            y = y_new
        if abs(look.saturation) > 1e-4:
            s = float(np.exp2(look.saturation))
            lin *= s
            lin += ((1 - s) * y)[..., None]
    np.clip(lin, 0, 1, out=lin)
    return lin


def apply_look(rgb: np.ndarray, look: Look, pivot: float) -> np.ndarray:
    """``look`` applied to RGB uint8 ``rgb`` (a new array); ``pivot`` as in :func:`apply_look_linear`."""
    if look.is_identity():
        return rgb
    return to_srgb(apply_look_linear(to_linear(rgb), look, pivot))


def pivot_of(stats: Stats, look: Look) -> float:
    """The contrast pivot: the person's mean luminance after ``look``'s gains (linear light)."""
    return float(np.exp2(stats.lum + look.exposure))
