"""ROI tracking: run the network on a crop around the person(s), not on the whole frame.

A person who fills a tenth of a 1080p frame gets only ~25 of the model's 256 pixels across
their body when the whole frame is squeezed into the input; a crop with a margin gives them
most of the input. The box comes from the previous matte (every kept component, so two people
both stay inside), is grown by a margin, shaped to the model's aspect ratio, and its four
coordinates are smoothed with Holt's double exponential smoothing and forecast one frame ahead
so the crop neither jumps nor lags. The full frame is used again (re-detection) every
``redetect_every`` frames, when the person touches a crop edge that is not the frame edge (they
are leaving the box), when confidence drops, and when nobody is found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Opt, Stage, StageSpec
from .smoothing import DoubleExponential


@dataclass
class RoiOptions:
    margin: float = 0.25  # of the person box size, on each side
    redetect_every: int = 30
    min_fraction: float = 0.2  # crop side never smaller than this fraction of the frame's
    full_frame_above: float = 0.7  # crops covering more of the frame than this: use the frame


class RoiTracker:
    """Per-stream crop box (x0, y0, x1, y1) in frame pixels, or None for the full frame."""

    def __init__(self, aspect: float, options: RoiOptions | None = None):
        self.aspect = aspect  # model input width / height
        self.opt = options or RoiOptions()
        self.smoother = DoubleExponential(alpha=0.6, beta=0.3)
        self.since_full = 0
        self.box: tuple[int, int, int, int] | None = None
        self.redetections = 0

    def reset(self) -> None:
        self.smoother.reset()
        self.box = None
        self.since_full = 0

    def next_box(self, w: int, h: int) -> tuple[int, int, int, int] | None:
        """The crop to run the network on for the coming frame (None = full frame)."""
        if self.box is None or self.since_full >= self.opt.redetect_every:
            self.since_full = 0
            self.redetections += 1
            return None
        self.since_full += 1
        x0, y0, x1, y1 = self.smoother.forecast()
        return self._fit(x0, y0, x1, y1, w, h)

    def target_box(self, mask: np.ndarray, w: int, h: int):
        """Person box (with margin, model aspect) in frame pixels from a matte at any scale."""
        ys, xs = np.nonzero(mask > 0.5)
        if xs.size < 4:
            return None
        sy, sx = h / mask.shape[0], w / mask.shape[1]
        x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
        y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
        bw, bh = x1 - x0, y1 - y0
        m = self.opt.margin
        return (x0 - m * bw, y0 - m * bh, x1 + m * bw, y1 + m * bh)

    def update(self, work_matte: np.ndarray, w: int, h: int, used_box, confident: bool = True) -> None:
        """Observe the latest matte (full-frame coordinates at working size)."""
        target = self.target_box(work_matte, w, h)
        if target is None or not confident:
            self.box = None  # nobody, or unsure: next frame looks at the whole frame
            self.smoother.reset()
            return
        if used_box is not None and self._leaving(work_matte, used_box, w, h):
            self.box = None
            self.smoother.reset()
            return
        self.smoother.update(target)
        self.box = self._fit(*self.smoother.level, w, h)
        if self.box is None:  # the person fills the frame: a crop gains nothing
            self.smoother.reset()

    def _leaving(self, work_matte, box, w, h) -> bool:
        """True when the matte touches an edge of the crop that is not an edge of the frame."""
        sy, sx = work_matte.shape[0] / h, work_matte.shape[1] / w
        x0, y0, x1, y1 = box
        cx0, cy0 = int(x0 * sx), int(y0 * sy)
        cx1, cy1 = max(cx0 + 1, int(x1 * sx) - 1), max(cy0 + 1, int(y1 * sy) - 1)
        m = work_matte > 0.5
        edges = []
        if x0 > 0:
            edges.append(m[cy0:cy1, cx0])
        if y0 > 0:
            edges.append(m[cy0, cx0:cx1])
        if x1 < w:
            edges.append(m[cy0:cy1, cx1])
        if y1 < h:
            edges.append(m[cy1, cx0:cx1])
        return any(e.mean() > 0.02 for e in edges if e.size)

    def _fit(self, x0, y0, x1, y1, w, h):
        """Shape to the model aspect, enforce a minimum size, shift inside the frame."""
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        bw, bh = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        if bw / bh < self.aspect:
            bw = bh * self.aspect
        else:
            bh = bw / self.aspect
        min_side = self.opt.min_fraction * min(w, h)
        if min(bw, bh) < min_side:
            k = min_side / min(bw, bh)
            bw, bh = bw * k, bh * k
        if bw > w or bh > h:  # cannot keep the aspect inside the frame: clip to it
            bw, bh = min(bw, w), min(bh, h)
        if bw * bh > self.opt.full_frame_above * w * h:
            return None
        x0 = min(max(cx - bw / 2, 0), w - bw)
        y0 = min(max(cy - bh / 2, 0), h - bh)
        return int(round(x0)), int(round(y0)), int(round(x0 + bw)), int(round(y0 + bh))


class RoiStage(Stage):
    """Run the network on a crop around the person; owns the crop, the paste, re-detection and
    the confidence that decides whether the next frame may use a crop."""

    def __init__(self, options, context):
        super().__init__(options, context)
        self.tracker = RoiTracker(context.aspect, RoiOptions(redetect_every=options.redetect_every))

    def before(self, fs) -> None:
        w, h = fs.size
        fs.crop_box = self.tracker.next_box(w, h)

    def segment(self, fs, network) -> None:
        w, h = fs.size
        work_matte = network.segment(fs, fs.crop_box)
        if fs.crop_box is None:
            # full-frame detection: when the person is small, look again on the crop at once
            with fs.timer("roi"):
                self.tracker.update(work_matte, w, h, None)
            if self.tracker.box is not None:
                fs.crop_box = self.tracker.box
                work_matte = network.segment(fs, fs.crop_box)
        fs.work_matte = work_matte

    def learn(self, fs) -> None:
        w, h = fs.size
        work_matte = fs.work_matte
        present = work_matte > 0.02
        confident = bool(np.abs(work_matte[present] * 2 - 1).mean() > 0.5) if present.any() else False
        self.tracker.update(work_matte, w, h, fs.crop_box, confident)

    def reset(self) -> None:
        self.tracker.reset()


STAGE = StageSpec(
    name="roi", phase="network", make=RoiStage,
    reads=("size", "work_matte"), writes=("crop_box", "work_matte"), web="roi",
    summary="small person in a big frame gets few network pixels: run the network on a crop around "
            "them, the box smoothed by Holt double exponential smoothing",
    options=[
        Opt("roi", True, "crop to the person (Holt-smoothed box) instead of the whole frame", raw=False, live=True),
        Opt("redetect_every", RoiOptions.redetect_every, "full-frame re-detection every N frames", low=1,
            high=100000, video_only=True, metavar="N"),
    ],
)
