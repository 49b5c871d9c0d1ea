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

    def reset(self) -> None:
        self.prev_grey = None
        self.fused = None

    def __call__(self, grey: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """``grey``: working-size float32 grey frame; ``matte``: working-size matte."""
        if self.fused is None or self.fused.shape != matte.shape or self.opt.strength <= 0:
            self.prev_grey, self.fused = grey, matte
            return matte
        diff = cv2.GaussianBlur(np.abs(grey - self.prev_grey), (5, 5), 0)
        span = max(1e-3, self.opt.motion_high - self.opt.motion_low)
        moving = np.clip((diff - self.opt.motion_low) / span, 0.0, 1.0)
        w_past = self.opt.strength * (1.0 - moving)
        fused = matte + w_past * (self.fused - matte)
        self.prev_grey, self.fused = grey, fused.astype(np.float32)
        return self.fused


def one_frame_delay(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """MODNet OFD: fix pixels of ``cur`` that disagree with both neighbours which agree."""
    agree = np.abs(prev - nxt) <= threshold
    flick = agree & (np.abs(cur - prev) > threshold) & (np.abs(cur - nxt) > threshold)
    if not flick.any():
        return cur
    out = cur.copy()
    out[flick] = 0.5 * (prev[flick] + nxt[flick])
    return out
