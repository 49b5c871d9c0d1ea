"""Matting metrics: MAD, MSE, Grad, Conn on the whole frame, and SAD in the unknown band.

Inputs are mattes: ``float32`` HxW arrays in [0, 1] (1 = person), prediction and truth of the
same shape. MAD, MSE, Grad and Conn follow Robust Video Matting's evaluation code
(PeterL1n/RobustVideoMatting @ 17d1774, ``evaluation/evaluate_lr.py``: ``MetricMAD``,
``MetricMSE``, ``MetricGRAD``, ``MetricCONN``), which computes them on the whole frame rather
than only inside a trimap's unknown region as the Deep Image Matting benchmark did (Xu et al.,
CVPR 2017; Rhemann et al., CVPR 2009, alphamatting.com). A real-time pipeline has no trimap, so a
wrong blob in the background must count; the classic in-band number is :func:`sad_unknown`.
Lower is better for all of them.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .segmentation import check_pair


def mad(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute difference x 1e3 (RVM ``MetricMAD``): 1000 * mean(|p - g|)."""
    pred, gt = check_pair(pred, gt)
    return float(np.abs(pred.astype(np.float64) - gt).mean() * 1e3)


def mse(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean squared error x 1e3 (RVM ``MetricMSE``): 1000 * mean((p - g)^2)."""
    pred, gt = check_pair(pred, gt)
    d = pred.astype(np.float64) - gt
    return float((d * d).mean() * 1e3)


@lru_cache(maxsize=8)
def gauss_derivative_filters(sigma: float = 1.4, epsilon: float = 1e-2) -> tuple[np.ndarray, np.ndarray]:
    """The x and y first-derivative-of-Gaussian kernels of the DIM/RVM Grad metric.

    Size: half = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma epsilon))), so the Gaussian tail below
    ``epsilon`` of its peak is cut (9x9 for sigma 1.4); kernel[i, j] = G(i) * G'(j), scaled to
    unit L2 norm; the y kernel is its transpose (RVM ``MetricGRAD.gauss_filter``).
    """
    half = int(np.ceil(sigma * np.sqrt(-2 * np.log(np.sqrt(2 * np.pi) * sigma * epsilon))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -x * g / sigma ** 2
    fx = np.outer(g, dg)
    fx /= np.sqrt((fx ** 2).sum())
    return fx, np.ascontiguousarray(fx.T)


def _normalise(a: np.ndarray) -> np.ndarray:
    """Min-max stretch to [0, 1] (all zeros if constant), as ``cv2.normalize(NORM_MINMAX)``."""
    lo, hi = float(a.min()), float(a.max())
    if hi - lo <= np.finfo(np.float64).eps:
        return np.zeros_like(a, dtype=np.float64)
    return (a.astype(np.float64) - lo) / (hi - lo)


def _gradient_magnitude(a: np.ndarray, sigma: float) -> np.ndarray:
    fx, fy = gauss_derivative_filters(sigma)
    gx = cv2.filter2D(a, cv2.CV_64F, fx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(a, cv2.CV_64F, fy, borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx * gx + gy * gy)


def grad(pred: np.ndarray, gt: np.ndarray, sigma: float = 1.4) -> float:
    """Gradient error / 1000: sum over the frame of (|grad g| - |grad p|)^2.

    Both alphas are first min-max normalised, then differentiated with first-order
    Gaussian-derivative filters of ``sigma`` 1.4 (Rhemann et al., CVPR 2009; DIM's MATLAB
    evaluation; RVM ``MetricGRAD``). It punishes blurry or jagged edges that MAD averages away.
    """
    pred, gt = check_pair(pred, gt)
    d = _gradient_magnitude(_normalise(gt), sigma) - _gradient_magnitude(_normalise(pred), sigma)
    return float((d * d).sum() / 1000.0)


def conn(pred: np.ndarray, gt: np.ndarray, step: float = 0.1, theta: float = 0.15) -> float:
    """Connectivity error / 1000 (Rhemann et al., CVPR 2009; RVM ``MetricCONN``).

    For thresholds t = step, 2*step, ..., 1 the largest 4-connected component of
    {g >= t} ∩ {p >= t} is the "source" region; each pixel's level l is the last threshold at
    which it was still connected to it (1 if it always was). With d = alpha - l, each map gets
    phi = 1 - d * [d >= theta], and the error is sum |phi_g - phi_p|. It punishes islands and holes
    that a person sees as disconnected blobs even when their area is small.
    """
    pred, gt = check_pair(pred, gt)
    thresholds = np.arange(0, 1 + step, step)
    level = -np.ones(gt.shape, dtype=np.float64)
    for i in range(1, len(thresholds)):
        both = ((gt >= thresholds[i]) & (pred >= thresholds[i])).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(both, connectivity=4)
        if n > 1:
            largest = labels == (1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))
        else:
            largest = np.zeros(gt.shape, dtype=bool)
        level[(level == -1) & ~largest] = thresholds[i - 1]
    level[level == -1] = 1.0
    d_gt = gt - level
    d_pred = pred - level
    phi_gt = 1 - d_gt * (d_gt >= theta)
    phi_pred = 1 - d_pred * (d_pred >= theta)
    return float(np.abs(phi_gt - phi_pred).sum() / 1000.0)


def unknown_band(gt: np.ndarray, radius: int = 10) -> np.ndarray:
    """The unknown region of a trimap made from the truth: boolean HxW.

    Everything within ``radius`` pixels of the edge: dilate(g > 0) minus erode(g == 1) with an
    elliptic kernel of 2*radius+1, the usual way to make evaluation trimaps from an alpha (DIM,
    Xu et al. 2017, sec. 4; e.g. ``gen_trimap`` in the GCA-Matting and MatteFormer code). Soft
    pixels of the truth are always inside it.
    """
    gt = np.asarray(gt, dtype=np.float32)
    eps = 0.5 / 255
    fg = (gt >= 1 - eps).astype(np.uint8)
    some = (gt > eps).astype(np.uint8)
    if radius > 0:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        some = cv2.dilate(some, k)
        fg = cv2.erode(fg, k, borderType=cv2.BORDER_REPLICATE)
    return (some > 0) & (fg == 0)


def sad_unknown(pred: np.ndarray, gt: np.ndarray, radius: int = 10) -> float:
    """Sum of absolute differences / 1000 inside the truth's unknown band (:func:`unknown_band`).

    The classic trimap-based SAD of the alphamatting.com and Composition-1k benchmarks
    (Rhemann et al. 2009; Xu et al. 2017): it measures the edge only, in absolute units, so it
    grows with image size and the length of the outline. 0 when the truth has no edge.
    """
    pred, gt = check_pair(pred, gt)
    band = unknown_band(gt, radius)
    return float(np.abs(pred[band].astype(np.float64) - gt[band]).sum() / 1000.0)
