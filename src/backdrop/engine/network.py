"""Running the segmentation network on a frame or a crop of it, timed and counted.

The network sees the whole frame, or the crop box a stage chose (ROI). Its low-resolution output
is pasted into a canvas at working size (zeros outside the crop), or, on the raw path where no
stage works at working size, resized straight to the frame's size: the bare network.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..models import Segmenter
from ..timing import StageTimer
from .state import FrameState, working_size


class Network:
    """The segmenter of one pipeline, with the engine's timer and an inference count."""

    def __init__(self, segmenter: Segmenter, timer: StageTimer):
        self.segmenter = segmenter
        self.timer = timer
        self.inferences = 0

    @property
    def aspect(self) -> float:
        return self.segmenter.spec.aspect

    def infer(self, crop: np.ndarray) -> np.ndarray:
        """The network's output (float32, model resolution) for an RGB uint8 image."""
        spec = self.segmenter.spec
        with self.timer("preprocess"):
            x = spec.preprocess(crop)
        with self.timer("inference"):
            y = self.segmenter.run(x)
            self.inferences += 1
        with self.timer("postprocess"):
            return spec.postprocess(y)

    def segment(self, fs: FrameState, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """The matte on ``box`` (None = the whole frame), pasted into a working-size canvas."""
        frame = fs.frame
        w, h = fs.size
        cw, ch, _ = working_size(w, h, fs.work_size)
        if box is None:
            return cv2.resize(self.infer(frame), (cw, ch), interpolation=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = box
        low = self.infer(frame[y0:y1, x0:x1])
        sx, sy = cw / w, ch / h
        cx0, cy0 = int(round(x0 * sx)), int(round(y0 * sy))
        cx1, cy1 = max(cx0 + 1, int(round(x1 * sx))), max(cy0 + 1, int(round(y1 * sy)))
        canvas = np.zeros((ch, cw), np.float32)
        canvas[cy0:cy1, cx0:cx1] = cv2.resize(low, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
        return canvas

    def full_frame(self, fs: FrameState) -> np.ndarray:
        """The raw path: the network on the whole frame, resized bilinearly to the frame's size."""
        low = self.infer(fs.frame)
        with self.timer("refine"):
            return cv2.resize(low, fs.size, interpolation=cv2.INTER_LINEAR)
