"""Finishing touch of a composite: light wrap.

Light wrap: a real person in front of a bright background is lit at the rim by it. A little of
the blurred new background is screened onto the person's edge, weighted by how close the pixel
is to the outline, so the cut-out looks like it belongs. (The brightness match that lived here
became the relight stage, issue 23: ``stages/relight.py``; ``evaluate/harmonize.py`` keeps the
old one as an anchor.)
"""

from __future__ import annotations

import cv2
import numpy as np

from ..resize import downscale


def light_wrap(composite: np.ndarray, background: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    if strength <= 0:
        return composite
    h, w = alpha.shape
    s = min(1.0, 320 / max(h, w))
    sw, sh = max(1, int(w * s)), max(1, int(h * s))
    a_small = downscale(alpha, sw, sh)
    bg_small = downscale(background, sw, sh).astype(np.float32)
    sigma = max(1.0, 0.01 * max(sw, sh))
    outside = cv2.GaussianBlur(1 - a_small, (0, 0), sigma)
    glow = cv2.GaussianBlur(bg_small * (1 - a_small)[..., None], (0, 0), sigma) / np.maximum(outside, 1e-3)[..., None]
    weight = np.clip(outside * a_small * 2.0, 0, 1) * strength
    weight = cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    glow = cv2.resize(glow, (w, h), interpolation=cv2.INTER_LINEAR)
    c = composite.astype(np.float32)
    screen = 255 - (255 - c) * (255 - glow) / 255
    return np.clip(c + weight * (screen - c) + 0.5, 0, 255).astype(np.uint8)
