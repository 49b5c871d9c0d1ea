"""The compositing equation ``I = a*F + (1-a)*B`` and its output forms.

Frames are RGB uint8 HxWx3; mattes are float32 HxW in [0, 1]. ``cv2.blendLinear`` evaluates the
equation in one pass without float copies of the frames, which matters at 1080p and 4K.
"""

from __future__ import annotations

import cv2
import numpy as np


def blend(fg: np.ndarray, bg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``a*F + (1-a)*B`` for RGB uint8 F and B and a float32 HxW matte; returns RGB uint8."""
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    if bg.shape != fg.shape:
        raise ValueError(f"background shape {bg.shape} != frame shape {fg.shape}")
    return cv2.blendLinear(fg, bg, a, 1.0 - a)


def to_rgba(fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight (un-premultiplied) RGBA uint8: colour of the person, alpha from the matte."""
    a8 = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([fg, a8])


def to_matte_image(alpha: np.ndarray) -> np.ndarray:
    """The matte as an 8-bit grey image HxW (255 = person), for use in other tools."""
    return np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
