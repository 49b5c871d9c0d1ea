"""Composite error: what the viewer sees, the colours of the output against the true composite.

A matte is judged by the picture it makes. When the true alpha ``a`` and the person's true
colours ``F`` are known, the true composite over a new background ``B`` is ``T = a*F + (1-a)*B``
and the pipeline's output can be compared with it pixel by pixel. The error is the mean absolute
difference over pixels and the three channels, in 8-bit levels (/255 units: 1.0 = one level).
It is measured over the whole frame and in the **edge band** (:func:`edge_band`), where halos,
fringes and blurry hair live; frames are RGB ``uint8`` HxWx3, alphas float32 HxW in [0, 1].
Lower is better.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

EDGE_BAND_LOW = 0.02
EDGE_BAND_HIGH = 0.98
EDGE_BAND_DILATE = 3  # pixels


def edge_band(alpha: np.ndarray, dilate: int = EDGE_BAND_DILATE, low: float = EDGE_BAND_LOW,
              high: float = EDGE_BAND_HIGH) -> np.ndarray:
    """The edge band of a true alpha: boolean HxW.

    Pixels where the truth is strictly between ``low`` (0.02) and ``high`` (0.98), plus both
    sides of any hard step (a pixel <= 0.02 next to one >= 0.98, 8-neighbourhood, so a binary
    truth has an edge band too), dilated by ``dilate`` (3) pixels with an elliptic
    (2*dilate+1)^2 kernel, so a matte that is off by a pixel or two is caught on both sides.
    The one definition behind every "band" number of ``backdrop eval --composite``.
    """
    a = np.asarray(alpha, dtype=np.float32)
    band = (a > low) & (a < high)
    lo, hi = a <= low, a >= high
    if lo.any() and hi.any():  # a hard step (background next to person, a binary truth) is an edge too
        k3 = np.ones((3, 3), np.uint8)
        band |= (lo & (cv2.dilate(hi.astype(np.uint8), k3) > 0)) | (hi & (cv2.dilate(lo.astype(np.uint8), k3) > 0))
    soft = band.astype(np.uint8)
    if dilate > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilate + 1, 2 * dilate + 1))
        soft = cv2.dilate(soft, k)
    return soft > 0


def true_composite(foreground: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``a*F + (1-a)*B`` as RGB uint8, rounded exactly as the pipeline's own blend rounds.

    ``foreground``, ``background``: RGB uint8 HxWx3 (a background may also be an RGB triple).
    """
    from ..compose.composite import blend

    fg = np.asarray(foreground)
    if fg.dtype != np.uint8:
        raise ValueError(f"foreground must be RGB uint8, got {fg.dtype}")
    bg = np.asarray(background)
    if bg.ndim == 1:
        bg = np.broadcast_to(bg.astype(np.uint8), fg.shape).copy()
    return blend(fg, bg, np.asarray(alpha, dtype=np.float32))


def composite_error(output: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute colour difference in 8-bit levels (/255) over ``mask`` (default: all pixels).

    ``output`` and ``truth`` are RGB HxWx3 (uint8 or float in 0..255); NaN for an empty mask.
    """
    out = np.asarray(output)
    tru = np.asarray(truth)
    if out.shape != tru.shape or out.ndim != 3:
        raise ValueError(f"output {out.shape} and truth {tru.shape} must be the same HxWx3 shape")
    d = np.abs(out.astype(np.float32) - tru.astype(np.float32)).mean(axis=2)
    if mask is None:
        return float(d.mean(dtype=np.float64))
    if mask.shape != d.shape:
        raise ValueError(f"mask {mask.shape} does not match the frame {d.shape}")
    n = int(np.count_nonzero(mask))
    return float(d[mask].sum(dtype=np.float64) / n) if n else math.nan
