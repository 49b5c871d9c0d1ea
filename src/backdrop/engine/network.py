"""Running the segmentation network on a frame or a crop of it, timed and counted.

The network sees the whole frame, or the crop box a stage chose (ROI). Its low-resolution output
is pasted into the working-size matte (zeros outside the crop), or, on the raw path where no
stage works at working size, resized straight to the frame's size: the bare network.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..models import Segmenter
from ..resize import downscale
from ..timing import StageTimer
from .state import FrameState, box_cells, working_size


SCENE_CUT = 40.0  # mean grey-level change between two network passes that is a new shot
LONG_GAP = 15  # frames without a network pass after which a recurrent model's state is stale


class Network:
    """The segmenter of one pipeline, with the engine's timer and an inference count.

    A matting model (RVM: ``spec.task == "matting"``) sees the whole frame at full resolution and
    gives a full-size alpha and foreground (``fs.model_alpha``, ``fs.model_fg``); its recurrent state is cleared
    on a scene cut and after a long gap without a pass (skipped or paused frames), where carrying
    it would smear the old shot into the new one.
    """

    def __init__(self, segmenter: Segmenter, timer: StageTimer, matting_size: int = 512):
        self.segmenter = segmenter
        self.timer = timer
        self.inferences = 0
        self.matting_size = matting_size
        self._last: tuple[int, np.ndarray] | None = None  # (frame index, small grey) of the last pass
        # a matting model's last pass: (alpha, foreground, working-size alpha), for skipped frames
        self.last_pass: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None

    @property
    def is_matting(self) -> bool:
        return bool(getattr(self.segmenter.spec, "is_matting", False))

    def _matte_full(self, fs: FrameState) -> np.ndarray:
        """A matting model's pass: alpha at full size; alpha and foreground kept in ``fs``."""
        small = cv2.resize(cv2.cvtColor(fs.frame, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA)
        if self._last is not None:
            index, grey = self._last
            cut = grey.shape == small.shape and float(cv2.absdiff(grey, small).mean()) > SCENE_CUT
            if cut or fs.index - index > LONG_GAP or fs.index < index:
                self.segmenter.reset()
        self._last = (fs.index, small)
        with self.timer("inference"):
            alpha, fg = self.segmenter.matte_full(fs.frame, self.matting_size)
            self.inferences += 1
        fs.model_alpha, fs.model_fg = alpha, fg
        return alpha

    def reuse_last_pass(self, fs: FrameState) -> None:
        """A frame whose pass was skipped reuses the last pass's full-size alpha and foreground."""
        if self.last_pass is not None and self.is_matting:
            fs.model_alpha, fs.model_fg, fs.model_alpha_small = self.last_pass

    def reset(self) -> None:
        self._last = None
        self.last_pass = None
        self.segmenter.reset()

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
        """The matte on ``box`` (None = the whole frame), pasted into a working-size matte."""
        w, h = fs.size
        cw, ch, _ = working_size(w, h, fs.work_size)
        if self.is_matting:  # the whole frame, always: a crop would break its recurrent state
            alpha = self._matte_full(fs)
            fs.model_alpha_small = work_matte = downscale(alpha, cw, ch)
            self.last_pass = (alpha, fs.model_fg, work_matte)
            return work_matte
        if box is None:
            return cv2.resize(self.infer(fs.network_crop(None, self.segmenter.spec.input_size)), (cw, ch),
                              interpolation=cv2.INTER_LINEAR)
        low = self.infer(fs.network_crop(box, self.segmenter.spec.input_size))
        cx0, cy0, cx1, cy1 = box_cells(box, (w, h), (cw, ch))
        work_matte = np.zeros((ch, cw), np.float32)
        work_matte[cy0:cy1, cx0:cx1] = cv2.resize(low, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
        return work_matte

    def full_frame(self, fs: FrameState) -> np.ndarray:
        """The raw path: the network on the whole frame, resized bilinearly to the frame's size
        (a matting model's own full-size alpha)."""
        if self.is_matting:
            return self._matte_full(fs)
        low = self.infer(fs.frame)
        with self.timer("refine"):
            return cv2.resize(low, fs.size, interpolation=cv2.INTER_LINEAR)
