"""Segmentation metrics: person IoU (per image and over a data set) and the boundary F-measure.

Inputs are mattes: ``float32`` HxW arrays in [0, 1] (1 = person), prediction and truth of the
same shape. Both are binarised with ``value > threshold`` (0.5: "more person than not"), so a
binary mask, a soft alpha and a network probability are all scored the same way.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def as_matte(a: np.ndarray, name: str = "matte") -> np.ndarray:
    """Check a matte (HxW, values in [0, 1]) and return it as float32 without copying if it is."""
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D HxW array, got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name} must be float in [0, 1] (or bool), got {a.dtype}")
    return a.astype(np.float32, copy=False)


def check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both mattes as float32 HxW of one shape (a mismatch is a caller bug, so ValueError)."""
    pred, gt = as_matte(pred, "prediction"), as_matte(gt, "ground truth")
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def _areas(pred: np.ndarray, gt: np.ndarray, threshold: float) -> tuple[int, int]:
    p, g = pred > threshold, gt > threshold
    return int(np.count_nonzero(p & g)), int(np.count_nonzero(p | g))


def iou(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Person intersection-over-union (Jaccard index) of one image, in [0, 1].

    J = |P ∩ G| / |P ∪ G| with P, G the pixels above ``threshold``: the region similarity
    "J" of the DAVIS benchmark (Perazzi et al., CVPR 2016, eq. 1; ``db_eval_iou`` in
    davisvideochallenge/davis). As there, an image with no person in either map scores 1: nothing
    was to be found and nothing was invented.
    """
    pred, gt = check_pair(pred, gt)
    inter, union = _areas(pred, gt, threshold)
    return 1.0 if union == 0 else inter / union


class IoUAccumulator:
    """IoU over a data set, two ways.

    ``mean_iou`` averages the per-image IoUs (every photo counts the same). ``dataset_iou`` sums
    the intersection and union areas over the whole set before dividing, as PaddleSeg's
    ``metrics.calculate_area`` + ``metrics.mean_iou`` do (and Cityscapes/VOC): big people count more,
    and one tiny figure with a bad IoU does not dominate. Both are for the person class only.

    >>> acc = IoUAccumulator()
    >>> per_image = acc.update(pred, gt)      # doctest: +SKIP
    >>> acc.dataset_iou, acc.mean_iou         # doctest: +SKIP
    """

    def __init__(self, threshold: float = 0.5):
        self.threshold = threshold
        self.intersection = 0
        self.union = 0
        self.per_image: list[float] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> float:
        """Add one image; return its own IoU."""
        pred, gt = check_pair(pred, gt)
        inter, union = _areas(pred, gt, self.threshold)
        self.intersection += inter
        self.union += union
        value = 1.0 if union == 0 else inter / union
        self.per_image.append(value)
        return value

    def __len__(self) -> int:
        return len(self.per_image)

    @property
    def dataset_iou(self) -> float:
        """Summed intersection / summed union (NaN before any image; 1 if no person anywhere)."""
        if not self.per_image:
            return math.nan
        return 1.0 if self.union == 0 else self.intersection / self.union

    @property
    def mean_iou(self) -> float:
        """Mean of the per-image IoUs (NaN before any image)."""
        return float(np.mean(self.per_image)) if self.per_image else math.nan


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide inner boundary of a boolean mask: person pixels with a 4-neighbour outside.

    The image border is not a boundary (a person cut off by the bottom of the frame has no edge
    there to get right), the same convention as DAVIS's ``seg2bmap``.
    """
    m = mask.astype(np.uint8)
    # cv2.erode pads with +inf by default, so the frame edge never erodes the mask.
    eroded = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3)))
    return (m > 0) & (eroded == 0)


def _distance_to(boundary: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the nearest ``True`` pixel of ``boundary``."""
    return cv2.distanceTransform((~boundary).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def band_pixels(band: float, shape: tuple[int, ...]) -> float:
    """``band`` in pixels; a value below 1 is a fraction of the image diagonal, as in DAVIS."""
    if band < 0:
        raise ValueError(f"band must be >= 0, got {band}")
    return math.ceil(band * math.hypot(shape[0], shape[1])) if 0 < band < 1 else float(band)


def boundary_pr(pred: np.ndarray, gt: np.ndarray, band: float = 3, threshold: float = 0.5
                ) -> tuple[float, float]:
    """(precision, recall) of the predicted boundary against the true one, within ``band`` px.

    Precision: share of predicted boundary pixels within ``band`` of a true boundary pixel;
    recall: share of true boundary pixels within ``band`` of a predicted one. Degenerate cases as
    DAVIS's ``f_boundary``: no boundary in either -> (1, 1); only a predicted one -> (0, 1); only a
    true one -> (1, 0).
    """
    pred, gt = check_pair(pred, gt)
    pb, gb = boundary_map(pred > threshold), boundary_map(gt > threshold)
    n_p, n_g = int(np.count_nonzero(pb)), int(np.count_nonzero(gb))
    if n_p == 0 or n_g == 0:
        return (1.0 if n_p == 0 else 0.0), (1.0 if n_g == 0 else 0.0)
    r = band_pixels(band, pred.shape) + 1e-3  # distances are float32; include the exact band
    precision = float(np.count_nonzero(_distance_to(gb)[pb] <= r)) / n_p
    recall = float(np.count_nonzero(_distance_to(pb)[gb] <= r)) / n_g
    return precision, recall


def boundary_f(pred: np.ndarray, gt: np.ndarray, band: float = 3, threshold: float = 0.5) -> float:
    """Boundary F-measure in [0, 1]: how well the outline matches, within ``band`` pixels.

    F = 2PR / (P + R) over boundary pixels, the contour accuracy "F" of the DAVIS benchmark
    (Perazzi et al., CVPR 2016, sec. 3.1, after Martin et al., PAMI 2004), where a boundary pixel
    counts as matched if one of the other map lies within a disc of radius ``band``. DAVIS uses
    0.8 % of the diagonal (``band=0.008``, about 8 px at 854x480); we default to a fixed 3 px
    because people notice a halo of a few pixels, whatever the frame size. IoU barely moves when
    the edge is a few pixels off on a large person; this metric does.
    """
    p, r = boundary_pr(pred, gt, band, threshold)
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)
