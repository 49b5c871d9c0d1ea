"""RGB to the YUV layouts a webcam presents: I420 and packed YUYV (4:2:2), BT.601 limited range.

Exists apart from the virtual camera sink because these conversions are pure numpy/OpenCV and
are used (and benchmarked) without pyvirtualcam or any device.
"""

from __future__ import annotations

import numpy as np

from ..planar import Planar


def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 (even W and H) -> I420 planes as a flat uint8 array of W*H*3/2 bytes."""
    return Planar.from_rgb(rgb).data.reshape(-1)


def rgb_to_yuyv(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 (even W) -> packed YUYV 4:2:2 (Y0 U Y1 V), flat, W*H*2 bytes.

    Built from the I420 conversion (same BT.601 limited-range matrix) with each chroma row used
    for two lines, so the two formats show identical colours.
    """
    h, w = rgb.shape[:2]
    y, u, v = Planar.from_rgb(rgb).planes
    out = np.empty((h, w // 2, 4), np.uint8)
    out[..., 0] = y[:, 0::2]
    out[..., 2] = y[:, 1::2]
    out[..., 1] = np.repeat(u, 2, axis=0)
    out[..., 3] = np.repeat(v, 2, axis=0)
    return out.reshape(-1)


def even_size(image: np.ndarray) -> np.ndarray:
    """Crop one pixel row/column if needed: 4:2:0 and 4:2:2 need even sizes."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        return np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
    return image
