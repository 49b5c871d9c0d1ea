"""Temporal stability: motion-guided fusion and MODNet's one-frame-delay flicker filter.

Per-frame segmentation shakes at the edges even when the person is still, because each frame's
noise differs. Where the image did not change (frame difference below a noise level) the new
matte is blended with the running fused matte; where it changed, the new matte is trusted
as is, so motion is never smeared. This adds no latency.

The one-frame delay (Ke et al., MODNet, AAAI 2022, "OFD"): when a pixel's matte at t-1 differs
from both t-2 and t, while t-2 and t agree, it is a flicker and takes their mean. It needs the
next frame, so it is used for files only (one frame of look-ahead), never live.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


MOTION_REACH = 0.008  # motion counts this far (fraction of the long side) from where it is seen


@dataclass
class TemporalOptions:
    strength: float = 0.7  # weight of the past where the image is still (0 = off)
    motion_low: float = 6.0  # grey-level change treated as noise
    motion_high: float = 24.0  # grey-level change treated as real motion
    ofd_threshold: float = 0.1


class MotionFusion:
    """Per-stream state: the previous working-size grey frame and fused matte."""

    def __init__(self, options: TemporalOptions | None = None):
        self.opt = options or TemporalOptions()
        self.prev_grey: np.ndarray | None = None
        self.fused: np.ndarray | None = None
        self.weight: np.ndarray | None = None  # weight of the past, working size, last frame
        self.prev_full: np.ndarray | None = None  # last full-resolution matte

    @staticmethod
    def _kernel(shape) -> np.ndarray:
        r = max(1, round(MOTION_REACH * max(shape)))
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    def reset(self) -> None:
        self.prev_grey = None
        self.fused = None
        self.weight = None
        self.prev_full = None

    def __call__(self, grey: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """``grey``: working-size float32 grey frame; ``matte``: working-size matte."""
        if self.fused is None or self.fused.shape != matte.shape or self.opt.strength <= 0:
            self.prev_grey, self.fused, self.weight = grey, matte, None
            return matte
        diff = cv2.GaussianBlur(np.abs(grey - self.prev_grey), (5, 5), 0)
        # motion anywhere near a pixel counts: a uniform shirt moving shows little change
        # inside it, only at its borders, yet its matte must follow too
        diff = cv2.dilate(diff, self._kernel(grey.shape))
        span = max(1e-3, self.opt.motion_high - self.opt.motion_low)
        moving = np.clip((diff - self.opt.motion_low) / span, 0.0, 1.0)
        w_past = (self.opt.strength * (1.0 - moving)).astype(np.float32)
        fused = matte + w_past * (self.fused - matte)
        self.prev_grey, self.fused, self.weight = grey, fused.astype(np.float32), w_past
        return self.fused

    def steady_full(self, full: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
        """Apply the same motion-gated blend to the full-resolution (refined) matte.

        The guided refinement takes its edges from the current frame, so sensor and
        compression noise in a still frame would make the refined edge shimmer even when the
        working-size matte is steady. Blending with the previous refined matte where nothing
        moved removes that; where the image moved the weight is 0 and the new matte is used.
        """
        prev, w = self.prev_full, weight
        self.prev_full = full
        if prev is None or w is None or prev.shape != full.shape:
            return full
        h, wd = full.shape
        w_up = cv2.resize(w, (wd, h), interpolation=cv2.INTER_LINEAR) if w.shape != full.shape else w
        out = prev - full
        out *= w_up
        out += full
        self.prev_full = out
        return out


def one_frame_delay(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """MODNet OFD: fix pixels of ``cur`` that disagree with both neighbours which agree."""
    agree = np.abs(prev - nxt) <= threshold
    flick = agree & (np.abs(cur - prev) > threshold) & (np.abs(cur - nxt) > threshold)
    if not flick.any():
        return cur
    out = cur.copy()
    out[flick] = 0.5 * (prev[flick] + nxt[flick])
    return out
