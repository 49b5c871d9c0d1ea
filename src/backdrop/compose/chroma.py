"""Chroma arithmetic for keying and despill: the key colour's direction in the chroma plane.

A colour ``c`` (RGB) splits into its grey part ``mean(c)`` and its chroma ``c - mean(c)``. For a key
colour ``k`` the unit vector ``u`` along ``k``'s chroma says "how much of the key's hue" a pixel
has: ``p = c . u`` (``u`` sums to zero, so ``c . u`` equals the chroma's projection). Keying maps
``p`` relative to the screen's local brightness to an alpha (``stages/key.py``); despill removes
the positive part of ``p`` from the person's colours (``stages/despill.py``),
which for green is exactly the classic average limiter ``G' = min(G, (R + B) / 2)`` spread so the
pixel's brightness ``mean(c)`` is unchanged.
"""

from __future__ import annotations

import numpy as np

from ..errors import OptionError
from .backgrounds.colour import parse_colour

KEY_NAMES = {"green": (0, 177, 64), "blue": (0, 71, 187)}
MIN_KEY_CHROMA = 0.25  # chroma / brightness below this is no key colour (a grey wall)
SPILL_CHROMA = 0.35  # an old background this coloured casts a spill worth removing
SKIN = (200.0, 140.0, 110.0)  # a skin tone: a background of that hue (wood, a red wall) is never despilled
MAX_SKIN_ALIGNMENT = 0.5  # cosine between the key's and skin's hue above which despill would grey skin
BRIGHTNESS_FLOOR = 16.0  # keeps the ratio sane in the dark


def parse_key(text) -> str:
    """``green``, ``blue``, ``#RRGGBB``, ``auto`` or ``""`` (off), normalised, or OptionError."""
    if not isinstance(text, str):
        raise OptionError(f"{{option}} must be green, blue, #RRGGBB or auto, got {str(text)[:40]!r}", option="key")
    t = text.strip().lower()
    if t in ("", "off", "none"):
        return ""
    if t in KEY_NAMES or t == "auto":
        return t
    rgb = parse_colour(t)
    if rgb is None or t in ("black", "white", "grey", "gray") or relative_chroma(np.float32(rgb)) < MIN_KEY_CHROMA:
        raise OptionError(f"{{option}} must be green, blue, #RRGGBB (a saturated colour) or auto, got {text[:40]!r}",
                          option="key")
    return "#%02x%02x%02x" % rgb


def key_rgb(text: str) -> np.ndarray | None:
    """The RGB of a fixed key (None for ``auto`` and off)."""
    if text in KEY_NAMES:
        return np.float32(KEY_NAMES[text])
    rgb = parse_colour(text) if text.startswith("#") else None
    return None if rgb is None else np.float32(rgb)


def relative_chroma(rgb: np.ndarray) -> float:
    """How coloured a colour is: chroma length over brightness."""
    rgb = np.asarray(rgb, np.float32)
    return float(np.linalg.norm(rgb - rgb.mean()) / (rgb.mean() + BRIGHTNESS_FLOOR))


def direction(rgb: np.ndarray) -> np.ndarray:
    """Unit vector of the key's chroma (sums to zero)."""
    rgb = np.asarray(rgb, np.float32)
    c = rgb - rgb.mean()
    return (c / max(float(np.linalg.norm(c)), 1e-6)).astype(np.float32)


def estimate_key(small: np.ndarray, background: np.ndarray) -> np.ndarray | None:
    """The old background's colour when it is a strong colour (a screen, a painted wall), from the
    pixels ``background`` marks (bool HxW at the size of ``small``); None when it is not."""
    where = np.flatnonzero(background)
    if len(where) < 0.02 * background.size:
        return None
    # a median of 4k pixels is as good, and 20x cheaper; gathered by index, not by copying all
    pixels = small.reshape(-1, 3)[where[:: max(1, len(where) // 4096)]]
    rgb = np.median(pixels, axis=0).astype(np.float32)
    return rgb if relative_chroma(rgb) >= MIN_KEY_CHROMA else None


def spill_colour(rgb: np.ndarray | None) -> np.ndarray | None:
    """``rgb`` when it is a background colour whose cast is worth removing: strongly coloured and
    of a hue far from skin (removing an orange wall's cast would grey the person's skin)."""
    if rgb is None or relative_chroma(rgb) < SPILL_CHROMA:
        return None
    return None if float(direction(rgb) @ direction(np.float32(SKIN))) > MAX_SKIN_ALIGNMENT else rgb
