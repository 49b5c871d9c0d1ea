"""MODNet's one-frame-delay flicker filter (Ke et al., MODNet, AAAI 2022, "OFD").

When a pixel's matte at t-1 differs from both t-2 and t, while t-2 and t agree, it is a flicker
and takes their mean. It needs the next frame, so it runs for files only (one frame of
look-ahead), never live. Measured on the shared clips: part of the default's flicker at most 0.38x
raw (docs/quality.md).
"""

from __future__ import annotations

import numpy as np

from .base import Opt, Stage, StageSpec

OFD_THRESHOLD = 0.1


def one_frame_delay(prev: np.ndarray, cur: np.ndarray, nxt: np.ndarray, threshold: float = OFD_THRESHOLD) -> np.ndarray:
    """MODNet OFD: fix pixels of ``cur`` that disagree with both neighbours which agree."""
    agree = np.abs(prev - nxt) <= threshold
    flick = agree & (np.abs(cur - prev) > threshold) & (np.abs(cur - nxt) > threshold)
    if not flick.any():
        return cur
    out = cur.copy()
    out[flick] = 0.5 * (prev[flick] + nxt[flick])
    return out


class DelayStage(Stage):
    """Per-stream state: the working-size matte of the frame before the one being fixed."""

    def __init__(self, options, context):
        super().__init__(options, context)
        self.prev: np.ndarray | None = None

    def look_ahead(self, fs, nxt) -> None:
        cur = fs.work_matte
        if self.prev is not None and cur.shape == nxt.work_matte.shape == self.prev.shape:
            fs.work_matte = one_frame_delay(self.prev, cur, nxt.work_matte)
        self.prev = cur

    def reset(self) -> None:
        self.prev = None


STAGE = StageSpec(
    name="delay", phase="work", make=DelayStage, needs_next=True,
    reads=("work_matte",), writes=("work_matte",),
    summary="flicker: MODNet one-frame delay, files only",
    options=[Opt("delay", True, "filter one-frame flicker with one frame of look-ahead (files)", raw=False,
                 video_only=True)],
)
