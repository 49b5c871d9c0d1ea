"""Skip when still: reuse the last matte while the person has not moved.

The frame difference is measured only in a band around the matte's edge: not in the face
interior (talking and expressions change pixels there without moving the outline) and not in
the far background (a screen or a window behind). The difference is taken against the frame of
the last real inference, not just the previous frame, so a slow drift still adds up and
triggers a re-run; the network runs at least every ``max_skip + 1`` frames anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .base import Opt, Stage, StageSpec


@dataclass
class StillOptions:
    threshold: float = 2.5  # mean absolute grey-level change in the band
    max_skip: int = 4  # at most this many reused frames in a row
    band: float = 0.03  # band half-width as a fraction of the working frame's long side


class StillDetector:
    def __init__(self, options: StillOptions | None = None):
        self.opt = options or StillOptions()
        self.ref_grey: np.ndarray | None = None
        self.band: np.ndarray | None = None
        self.skipped_in_row = 0
        self.skipped = 0

    def reset(self) -> None:
        self.ref_grey = None
        self.band = None
        self.skipped_in_row = 0

    def should_skip(self, grey: np.ndarray) -> bool:
        if self.ref_grey is None or self.band is None or self.ref_grey.shape != grey.shape:
            return False
        if self.skipped_in_row >= self.opt.max_skip:
            return False
        if not self.band.any():
            return False
        change = float(np.abs(grey[self.band] - self.ref_grey[self.band]).mean())
        if change < self.opt.threshold:
            self.skipped_in_row += 1
            self.skipped += 1
            return True
        return False

    def observe(self, grey: np.ndarray, matte: np.ndarray) -> None:
        """Record the frame and matte of a real inference."""
        self.skipped_in_row = 0
        self.ref_grey = grey
        r = max(1, int(round(self.opt.band * max(matte.shape))))
        # a square neighbourhood: OpenCV dilates and erodes by a rectangle in time independent of
        # its size, by an ellipse in time growing with it (31x31 at 512x480: 5.3 ms a real
        # inference, now 0.9 ms); the band is a place to look for motion, its corners do not matter
        binary = (matte > 0.5).astype(np.uint8)
        self.band = cv2.morphologyEx(binary, cv2.MORPH_GRADIENT, np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0


class StillStage(Stage):
    """Skip the network while the person is still; reuse the last network matte instead."""

    def __init__(self, options, context):
        super().__init__(options, context)
        self.detector = StillDetector(StillOptions(max_skip=options.max_skip))
        self.last_work_matte: np.ndarray | None = None

    def before(self, fs) -> None:
        if self.last_work_matte is not None and self.detector.should_skip(fs.work_grey):
            fs.skipped = True
            fs.work_matte = self.last_work_matte

    def learn(self, fs) -> None:
        self.detector.observe(fs.work_grey, fs.work_matte)
        self.last_work_matte = fs.work_matte

    def reset(self) -> None:
        self.detector.reset()
        self.last_work_matte = None


STAGE = StageSpec(
    name="still", phase="network", make=StillStage,
    reads=("work_grey", "work_matte"), writes=("skipped", "work_matte"),
    summary="CPU load: reuse the matte while the edge band did not change",
    options=[
        Opt("skip_still", True, "reuse the matte while the person is still", raw=False, live=True,
            video_only=True, flag="--no-skip"),
        Opt("max_skip", StillOptions.max_skip, "re-run the network at least every K+1 frames", low=0, high=1000,
            live=True, video_only=True, metavar="K"),
    ],
)
