"""Temporal metrics: dtSSD against per-frame truth, and a flicker score that needs no truth.

Mattes are ``float32`` HxW arrays in [0, 1] (1 = person); frames are RGB ``uint8`` HxWx3. Both
metrics stream: the accumulators keep only the previous frame, so a long clip never has to be
held in memory, and the functions accept any iterables (lists or generators).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import cv2
import numpy as np

from .segmentation import as_matte, check_pair


def dtssd_pair(pred_t: np.ndarray, pred_tm1: np.ndarray, gt_t: np.ndarray, gt_tm1: np.ndarray) -> float:
    """dtSSD of one frame pair: 100 * sqrt(mean(((p_t - p_t-1) - (g_t - g_t-1))^2)).

    The temporal coherence metric of Erofeev et al. (BMVC 2015, "Perceptually motivated
    benchmark for video matting") as Robust Video Matting computes it (PeterL1n/RobustVideoMatting
    @ 17d1774, ``evaluation/evaluate_lr.py`` and ``evaluate_hr.py``, ``MetricDTSSD``): the squared
    differences are summed, divided by the pixel count, square-rooted and scaled by 100.
    """
    pred_t, gt_t = check_pair(pred_t, gt_t)
    pred_tm1, gt_tm1 = check_pair(pred_tm1, gt_tm1)
    if pred_t.shape != pred_tm1.shape:
        raise ValueError(f"frame shapes differ within a sequence: {pred_tm1.shape} then {pred_t.shape}")
    d = (pred_t.astype(np.float64) - pred_tm1) - (gt_t.astype(np.float64) - gt_tm1)
    return float(np.sqrt((d * d).sum() / gt_t.size) * 100.0)


class DtSSDAccumulator:
    """Feed (prediction, truth) frame by frame; ``value`` is the clip's dtSSD.

    The clip value is the mean of the per-pair values, as RVM averages its ``pha_dtssd`` column.
    RVM's script also writes a 0 for the first frame (it has no predecessor) and its spreadsheet
    average includes it; we average over the N-1 real pairs only, so short clips are not flattered.
    """

    def __init__(self) -> None:
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.per_pair: list[float] = []

    def update(self, pred: np.ndarray, gt: np.ndarray) -> float | None:
        """Add the next frame; return the dtSSD of the pair it closes (None for the first frame)."""
        pred, gt = check_pair(pred, gt)
        value = None
        if self._prev is not None:
            value = dtssd_pair(pred, self._prev[0], gt, self._prev[1])
            self.per_pair.append(value)
        self._prev = (pred, gt)
        return value

    @property
    def value(self) -> float:
        """Mean dtSSD over frame pairs (NaN with fewer than two frames). Lower is steadier."""
        return float(np.mean(self.per_pair)) if self.per_pair else math.nan


def dtssd(pred_seq: Iterable[np.ndarray], gt_seq: Iterable[np.ndarray]) -> float:
    """dtSSD of a clip: the mean over consecutive frame pairs of :func:`dtssd_pair`.

    Measures temporal incoherence that the truth does not have: a matte that flickers while the
    truth stays still, or that stays still while the truth moves. 0 for a perfect prediction and
    for any prediction that differs from the truth by a constant offset. NaN for < 2 frames.
    """
    acc = DtSSDAccumulator()
    for pred, gt in zip(pred_seq, gt_seq, strict=True):
        acc.update(pred, gt)
    return acc.value


def _grey(frame: np.ndarray) -> np.ndarray:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be RGB uint8 HxWx3, got {frame.dtype} {frame.shape}")
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


class FlickerAccumulator:
    """Mean absolute matte change where the picture itself stood still, x 1e3.

    For each pair of consecutive frames, a pixel is *static* when the blurred luma changed by no
    more than ``motion_threshold`` (of 255) there and at every pixel within ``margin`` pixels
    (the margin keeps the soft tail of a moving edge out). Flicker = 1000 * sum over pairs and
    static pixels of |m_t - m_t-1| / number of static pixels, on the MAD scale (thousandths of full
    opacity per frame). A real matte should not change where nothing moved, so a steady person
    with a shimmering edge, or a background patch that blinks in and out, scores badly.

    This is the warping error of Lai et al. (ECCV 2018, "Learning Blind Video Temporal
    Consistency", E_warp over non-occluded pixels) with the flow taken as zero and the occlusion
    mask replaced by the no-motion mask, so it needs neither truth nor optical flow. The
    threshold sits above H.264 noise on a still background (a few levels) and below the change a
    moving person causes.
    """

    def __init__(self, motion_threshold: float = 10.0, margin: int = 4, blur: int = 5):
        self.motion_threshold = float(motion_threshold)
        self.margin = int(margin)
        self.blur = int(blur)
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self.total = 0.0
        self.static_pixels = 0
        self.pixels = 0
        self.pairs = 0

    def _luma(self, frame: np.ndarray) -> np.ndarray:
        g = _grey(frame)
        return cv2.GaussianBlur(g, (self.blur, self.blur), 0) if self.blur > 1 else g

    def static_mask(self, luma_t: np.ndarray, luma_tm1: np.ndarray) -> np.ndarray:
        """Boolean HxW: pixels whose neighbourhood did not change between the two frames."""
        moving = (cv2.absdiff(luma_t, luma_tm1) > self.motion_threshold).astype(np.uint8)
        if self.margin > 0:
            k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * self.margin + 1, 2 * self.margin + 1))
            moving = cv2.dilate(moving, k)
        return moving == 0

    def update(self, frame: np.ndarray, matte: np.ndarray) -> float | None:
        """Add the next frame and its matte; return this pair's flicker (None for the first frame
        or when nothing stood still)."""
        matte = as_matte(matte)
        if matte.shape != frame.shape[:2]:
            raise ValueError(f"matte {matte.shape} does not match frame {frame.shape[:2]}")
        luma = self._luma(frame)
        value = None
        if self._prev is not None:
            luma_prev, matte_prev = self._prev
            if luma_prev.shape != luma.shape:
                raise ValueError(f"frame size changed within a sequence: {luma_prev.shape} then {luma.shape}")
            static = self.static_mask(luma, luma_prev)
            n = int(np.count_nonzero(static))
            change = float(np.abs(matte[static].astype(np.float64) - matte_prev[static]).sum())
            self.total += change
            self.static_pixels += n
            self.pixels += static.size
            self.pairs += 1
            value = change / n * 1e3 if n else None
        self._prev = (luma, matte)
        return value

    @property
    def value(self) -> float:
        """Flicker over the clip so far (NaN before two frames or if nothing ever stood still)."""
        return self.total / self.static_pixels * 1e3 if self.static_pixels else math.nan

    @property
    def static_fraction(self) -> float:
        """Share of pixels (over all pairs) that counted as static: how much the score rests on."""
        return self.static_pixels / self.pixels if self.pixels else math.nan


def flicker(frames: Iterable[np.ndarray], mattes: Iterable[np.ndarray], motion_threshold: float = 10.0,
            margin: int = 4) -> float:
    """Flicker of a clip without ground truth; see :class:`FlickerAccumulator` (lower is steadier).

    ``frames`` are RGB uint8 HxWx3 and ``mattes`` float32 HxW in [0, 1], in order, same length.
    A one-pixel matte toggling 0 -> 1 on a still 10x10 frame scores 1000 * 1/100 = 10 per pair.
    """
    acc = FlickerAccumulator(motion_threshold=motion_threshold, margin=margin)
    for frame, matte in zip(frames, mattes, strict=True):
        acc.update(frame, matte)
    return acc.value
