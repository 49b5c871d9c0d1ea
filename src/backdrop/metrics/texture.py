"""Skin texture and edge content of a face, before and after a touch-up (skin smoothing).

Frames are RGB ``uint8`` HxWx3 and the truth a matte (float32 HxW in [0, 1]). Everything is
measured on the luma (OpenCV's RGB2GRAY) inside a **face box** found without a face detector
(OpenCV 5 ships no Haar cascade): the largest connected region of pixels that are skin-coloured
(YCrCb range of Chai & Ngan 1999: Cr 133..173, Cb 77..127), inside the truth (> 0.5) and smooth
(luma standard deviation over 7x7 below 5 levels: hair of a skin-like colour is textured, a
face's skin is not), opened with a 7x7 square; its bounding box, refused when narrower than a
quarter of the image or not face-shaped (height / width outside 0.8..1.8).

:func:`texture_ratios` gives after / before ratios (1 = unchanged) of:

- ``fine``: mean absolute 4-neighbour Laplacian over the face box's skin pixels (the skin mask
  above and truth > 0.9, eroded 5x5) below the box's 90th gradient percentile: pores, grain;
- ``mid``: the same pixels' mean absolute difference of Gaussians (sigma 1 and 4): blemishes,
  uneven tone (and soft shading, which a touch-up keeps, so this falls less);
- ``edges``: mean Sobel gradient magnitude at the face box's strongest 3% of gradients (fixed
  positions, taken before): eyes, lashes, brows, nostrils, lips;
- ``eyes``: the same in the upper half of the face box (eyes and eyebrows);
- ``hair_fine`` / ``hair_edges``: the person (truth > 0.9) beside and above the face box (hair,
  ears): mean absolute Laplacian, and mean gradient at its strongest 10%.
"""

from __future__ import annotations

import cv2
import numpy as np

SKIN_CR = (133, 173)
SKIN_CB = (77, 127)


def skin_mask(image: np.ndarray) -> np.ndarray:
    """Chai & Ngan's skin colour range on OpenCV's 8-bit YCrCb: boolean HxW."""
    ycc = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    return (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)


def _gradient(y: np.ndarray) -> np.ndarray:
    return cv2.magnitude(cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3))


def _laplacian(y: np.ndarray) -> np.ndarray:
    return np.abs(cv2.Laplacian(y, cv2.CV_32F, ksize=1))


def face_box(image: np.ndarray, truth: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the face (see the module docstring), or None when none is found."""
    y = _luma(image)
    mean = cv2.blur(y, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(y * y, (7, 7)) - mean * mean, 0))
    skin = (skin_mask(image) & (truth > 0.5) & (std < 5.0)).astype(np.uint8)
    skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, np.ones((7, 7), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(skin)
    if n < 2:
        return None
    i = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y0, w, h = (int(v) for v in stats[i, :4])
    if w < image.shape[1] / 4 or not 0.8 <= h / w <= 1.8:
        return None
    return x, y0, w, h


def texture_ratios(before: np.ndarray, after: np.ndarray, truth: np.ndarray,
                   box: tuple[int, int, int, int]) -> dict[str, float]:
    """After / before ratios of the face's texture and edges (see the module docstring)."""
    x, y, w, h = box
    face = np.s_[y:y + h, x:x + w]
    y0, y1 = _luma(before), _luma(after)
    g0, g1 = _gradient(y0), _gradient(y1)
    l0, l1 = _laplacian(y0), _laplacian(y1)
    skin = (skin_mask(before) & (truth > 0.9))[face].astype(np.uint8)
    skin = cv2.erode(skin, np.ones((5, 5), np.uint8)) > 0
    flat = skin & (g0[face] < np.percentile(g0[face], 90))
    dog0 = np.abs(cv2.GaussianBlur(y0, (0, 0), 1.0) - cv2.GaussianBlur(y0, (0, 0), 4.0))[face]
    dog1 = np.abs(cv2.GaussianBlur(y1, (0, 0), 1.0) - cv2.GaussianBlur(y1, (0, 0), 4.0))[face]
    strong = g0[face] >= np.percentile(g0[face], 97)
    upper = np.zeros_like(strong)
    upper[: h // 2] = True
    hair = truth > 0.9
    hair[face] = False
    hair[y + h:] = False
    hair_strong = hair & (g0 >= np.percentile(g0[hair], 90)) if hair.any() else hair

    def ratio(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
        return float(b[where].mean() / max(a[where].mean(), 1e-6)) if where.any() else 1.0

    return {
        "fine": ratio(l0[face], l1[face], flat),
        "mid": ratio(dog0, dog1, flat),
        "edges": ratio(g0[face], g1[face], strong),
        "eyes": ratio(g0[face], g1[face], strong & upper),
        "hair_fine": ratio(l0, l1, hair),
        "hair_edges": ratio(g0, g1, hair_strong),
    }
