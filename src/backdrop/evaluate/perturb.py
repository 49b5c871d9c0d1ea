"""Perturbations of the person only: the inputs of the harmonization benchmark (issue 23).

A photo of a person is harmonious as shot. Changing the person's light and keeping the
background makes a composite whose true harmonization is the photo itself (the protocol of
iHarmony4, Cong et al., "DoveNet", CVPR 2020, on our own portraits). Each kind changes the
person's pixels ``P`` and the input is ``a * P' + (1 - a) * P`` with the true matte ``a``.

The perturbations are written in other forms than the correction (``compose/relight.py``), so
that no correction inverts them exactly (no "inverse crime"):

- ``exposure``: a gain of ``2**e`` stops in linear light, ``e`` in [-1, 1], highlights clipped
  as a sensor clips them;
- ``temperature``: the illuminant moved by ``dk`` in [-1500, 1500] K from 6500 K along the
  Planckian locus (Kim et al. 2002's cubic fit), applied as von Kries gains in linear sRGB,
  normalised to keep grey's luminance;
- ``contrast``: the sRGB levels stretched about the person's mean level by ``2**c``, ``c`` in
  [-0.6, 0.6] (0.66x to 1.52x);
- ``saturation``: HSV saturation scaled by ``2**s``, ``s`` in [-0.7, 0.7] (0.62x to 1.62x);
- ``lowlight``: a dark room: ``-1.5`` to ``-2.5`` stops, then sensor noise of 2 to 5 levels
  (Gaussian per channel, after the tone curve, as a webcam's shadows look).
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from ..compose.relight import to_linear, to_srgb

KINDS = ("exposure", "temperature", "contrast", "saturation", "lowlight")
REFERENCE_K = 6500.0
XYZ_TO_RGB = np.float64([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])


def planckian_xy(kelvin: float) -> tuple[float, float]:
    """CIE 1931 xy of a black body at ``kelvin`` (1667..25000 K; Kim et al., US patent 7024034)."""
    t = float(np.clip(kelvin, 1667.0, 25000.0))
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


def illuminant_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB of a white lit at ``kelvin`` (luminance 1)."""
    x, y = planckian_xy(kelvin)
    xyz = np.float64([x / y, 1.0, (1 - x - y) / y])
    return XYZ_TO_RGB @ xyz


def temperature_gains(delta_k: float, reference: float = REFERENCE_K) -> np.ndarray:
    """Von Kries gains (float32 3) that relight a scene balanced for ``reference`` K with an
    illuminant ``delta_k`` warmer (negative) or cooler (positive), grey's luminance kept."""
    g = illuminant_rgb(reference + delta_k) / illuminant_rgb(reference)
    return (g / float(np.float64([0.2126, 0.7152, 0.0722]) @ g)).astype(np.float32)


def perturb_person(image: np.ndarray, kind: str, amount: float, rng: np.random.Generator | None = None,
                   alpha: np.ndarray | None = None, noise: float = 0.0) -> np.ndarray:
    """``image`` (RGB uint8) with the light of ``kind`` changed by ``amount`` everywhere
    (composite it with :func:`perturbed_composite`); ``alpha`` weighs the person's mean level for
    ``contrast``; ``noise`` (levels) and ``rng`` for ``lowlight``."""
    if kind == "exposure" or kind == "lowlight":
        out = to_srgb(to_linear(image) * np.float32(2.0 ** amount))
        if kind == "lowlight" and noise > 0:
            rng = rng or np.random.default_rng(0)
            out = np.clip(out + rng.normal(0, noise, out.shape) + 0.5, 0, 255).astype(np.uint8)
        return out
    if kind == "temperature":
        return to_srgb(to_linear(image) * temperature_gains(amount))
    if kind == "contrast":
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        w = np.ones_like(grey) if alpha is None else alpha
        mean = float((grey * w).sum() / max(float(w.sum()), 1e-6))
        out = mean + (image.astype(np.float32) - mean) * np.float32(2.0 ** amount)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if kind == "saturation":
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 1] = np.clip(hsv[..., 1] * np.float32(2.0 ** amount), 0, 255)
        return cv2.cvtColor(np.round(hsv).astype(np.uint8), cv2.COLOR_HSV2RGB)
    raise ValueError(f"unknown perturbation {kind!r}: one of {', '.join(KINDS)}")


def perturbed_composite(image: np.ndarray, alpha: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """``alpha * changed + (1 - alpha) * image``, rounded: the person changed, the room kept."""
    a = np.asarray(alpha, np.float32)[..., None]
    out = a * changed.astype(np.float32) + (1 - a) * image.astype(np.float32)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def draw_amount(kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """(amount, noise) of a perturbation of ``kind``, drawn from the ranges of the module docstring."""
    if kind == "exposure":
        return float(rng.uniform(-1, 1)), 0.0
    if kind == "temperature":
        return float(rng.uniform(-1500, 1500)), 0.0
    if kind == "contrast":
        return float(rng.uniform(-0.6, 0.6)), 0.0
    if kind == "saturation":
        return float(rng.uniform(-0.7, 0.7)), 0.0
    if kind == "lowlight":
        return float(rng.uniform(-2.5, -1.5)), float(rng.uniform(2, 5))
    raise ValueError(f"unknown perturbation {kind!r}: one of {', '.join(KINDS)}")


def seeded_rng(name: str, kind: str, seed: int = 0) -> np.random.Generator:
    """The generator of one (photo, kind): the same draw whatever else is in the set."""
    return np.random.default_rng([seed, zlib.crc32(f"{name}/{kind}".encode())])


def perturb(image: np.ndarray, alpha: np.ndarray, name: str, kind: str, seed: int = 0
            ) -> tuple[np.ndarray, float]:
    """(input, amount): photo ``name``'s person perturbed by ``kind`` (seeded by name and kind)."""
    rng = seeded_rng(name, kind, seed)
    amount, noise = draw_amount(kind, rng)
    changed = perturb_person(image, kind, amount, rng, alpha=alpha, noise=noise)
    return perturbed_composite(image, alpha, changed), amount
