"""Temporal stability: motion-guided fusion of the working-size matte.

Per-frame segmentation shakes at the edges even when the person is still, because each frame's
noise differs. Where the image did not change (frame difference below a noise level) the new
matte is blended with the running fused matte; where it changed, the new matte is trusted
as is, so motion is never smeared. This adds no latency. The same weights steady the refined
full-size matte (``stages/steady.py``); MODNet's one-frame delay is ``stages/delay.py``.

The strength default 0.93 was measured on the shared clips (docs/quality.md: flicker at most
0.38x raw with dtSSD down on both DAVIS clips).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .base import Opt, Stage, StageSpec


SURE_BACKGROUND = 0.02  # network matte below this: no person here (0.1 cost hike boundary F)
LET_GO = (0.0, 0.02)  # sliding person (4 tuning clips): MAD 15.8-22.6 -> 14.1-20.2 x1e3, raw 18.6-39.3; docs/quality.md
MOTION_REACH = 0.008  # motion counts this far (fraction of the long side) from where it is seen


STRENGTH = Opt("temporal", 0.93, "motion-guided temporal fusion strength, 0 = off", low=0, high=1,
                high_open=True, raw=0.0, live=True, video_only=True, metavar="S")


@dataclass
class TemporalOptions:
    strength: float = STRENGTH.default  # weight of the past where the image is still (0 = off)
    motion_low: float = 6.0  # grey-level change treated as noise
    motion_high: float = 24.0  # grey-level change treated as real motion
    let_go_low: float = LET_GO[0]  # matte disagreement with the past up to which the past is kept
    let_go_high: float = LET_GO[1]  # ... and from which it is dropped (the person left)


def let_go(new: np.ndarray, past: np.ndarray, low: float, high: float) -> np.ndarray:
    """Share of the past to keep where the network is now sure there is no person but the past
    had one: the person left, even if the picture barely changed there (a shirt the colour of the
    wall). Without it the old matte stays behind as a grey trail. Only the confident-background
    side lets go, so flicker inside the soft edge band is still smoothed.

    It lets go of any past above the sure background (``LET_GO`` from 0): with a margin of 0.05
    the past's faint remainder (0.02-0.1 where the person had been, the refined edge's halo
    included) was kept at 0.93 a frame and drew a haze behind a person crossing a still
    background, worse than the network alone (sliding clip seed 2: MAD 20.8 against raw 18.7;
    now 18.3). The flicker this lets through is the network's own at under 0.02: +3-5 % on the
    shared still clips, DAVIS dtSSD unchanged (docs/quality.md)."""
    drop = past - new  # in place from here: the same values, a third fewer passes over the frame
    drop -= low
    drop /= max(1e-3, high - low)
    np.clip(drop, 0.0, 1.0, out=drop)
    drop *= new < SURE_BACKGROUND
    return np.subtract(1.0, drop, out=drop)


class MotionFusion:
    """Per-stream state: the previous working-size grey frame and fused matte."""

    def __init__(self, options: TemporalOptions | None = None):
        self.opt = options or TemporalOptions()
        self.prev_grey: np.ndarray | None = None
        self.fused: np.ndarray | None = None
        self.weight: np.ndarray | None = None  # weight of the past, working size, last frame

    @staticmethod
    def _kernel(shape) -> np.ndarray:
        r = max(1, round(MOTION_REACH * max(shape)))
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))

    def reset(self) -> None:
        self.prev_grey = None
        self.fused = None
        self.weight = None

    def __call__(self, grey: np.ndarray, matte: np.ndarray) -> np.ndarray:
        """``grey``: working-size float32 grey frame; ``matte``: working-size matte."""
        if self.fused is None or self.fused.shape != matte.shape or self.opt.strength <= 0:
            self.prev_grey, self.fused, self.weight = grey, matte, None
            return matte
        diff = cv2.GaussianBlur(np.abs(grey - self.prev_grey), (5, 5), 0)
        # motion anywhere near a pixel counts: a uniform shirt moving shows little change
        # inside it, only at its borders, yet its matte must follow too
        moving = cv2.dilate(diff, self._kernel(grey.shape))
        # in place, the same arithmetic as written out: (diff - low) / span clipped to [0, 1],
        # strength * (1 - moving), matte + w_past * (fused - matte)
        moving -= self.opt.motion_low
        moving /= max(1e-3, self.opt.motion_high - self.opt.motion_low)
        np.clip(moving, 0.0, 1.0, out=moving)
        w_past = np.subtract(1.0, moving, out=moving)
        w_past *= self.opt.strength
        w_past = w_past.astype(np.float32, copy=False)
        if self.opt.let_go_low < 1:
            w_past *= let_go(matte, self.fused, self.opt.let_go_low, self.opt.let_go_high)
        fused = self.fused - matte
        fused *= w_past
        fused += matte
        self.prev_grey, self.fused, self.weight = grey, fused.astype(np.float32, copy=False), w_past
        return self.fused


class TemporalStage(Stage):
    """Fuse each frame's working-size matte with the past where the picture is still."""

    def __init__(self, options, context):
        super().__init__(options, context)
        self.fusion = MotionFusion(TemporalOptions(strength=options.temporal))

    def work(self, fs) -> None:
        fs.work_matte = self.fusion(fs.work_grey, fs.work_matte)
        fs.past_weight = self.fusion.weight

    def reset(self) -> None:
        self.fusion.reset()


STAGE = StageSpec(
    name="temporal", phase="work", make=TemporalStage, on_skipped=True,
    reads=("work_grey", "work_matte"), writes=("work_matte", "past_weight"), web="temporal",
    constants={"motion_low": TemporalOptions.motion_low, "motion_high": TemporalOptions.motion_high,
               "let_go_low": LET_GO[0], "let_go_high": LET_GO[1], "sure_background": SURE_BACKGROUND,
               "motion_reach": MOTION_REACH},
    summary="shaking edges: motion-guided fusion with the past where nothing moved",
    options=[STRENGTH], enabled=lambda o: o.temporal > 0,
)
