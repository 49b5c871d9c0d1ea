"""Relight: the person harmonized to the background they are composited over, and lifted in low light.

Two hooks, in the order a frame meets them:

- ``foreground`` (every background, transparent included): **low light and backlight**. The
  face's level (the tracker's face landmarks, else the top of the matte) decides a lift
  (``relight_estimate.lift_gain``: none for a well-exposed face); the lift is a tone curve with a
  highlight shoulder and the brightened noise is smoothed (``compose/lowlight.py``).
- ``over`` (sees the new background): **harmonization**. Exposure, white balance (temperature and
  tint), contrast and saturation of the person are moved toward the background's statistics,
  the part of each difference beyond how people and rooms naturally differ
  (``compose/relight_estimate.py``), applied to the person only (the blend uses the matte) in
  linear light (``compose/relight.py``). A flat colour is no scene: nothing is matched to it.

Over time both are smoothed exponentially (``SMOOTHING`` of the way per frame, about 0.7 s at 30
frames/s) so a person moving their arms, which moves the statistics a little every frame, never
makes the picture pump; a new background (its thumbnail changes, ``NEW_BACKGROUND`` levels) and the
first frame take the new values at once. ``docs/quality.md`` has the measurements: fMSE and PSNR
on perturbed portraits (``backdrop eval --harmonize``) and the flicker of the correction on every
shared clip (``benchmarks/harmonize.py``).

``--relight S`` scales the whole correction (0: off). ``--colour-match S`` is its old name
(issue 23 folded the brightness-only colour match into this stage): above 0 it is the strength, so
old command lines, config files and live keys keep working (0, its old default, changes nothing).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compose.lowlight import (DENOISE_CLIP, DENOISE_FROM, DENOISE_SIGMA, DENOISE_SPACE, NOISE_CLIP, NOISE_UNIT,
                                lift_person, person_noise)
from ..compose.relight import Look, apply_look, pivot_of
from ..compose.relight_estimate import (FAR_WEIGHT, FLAT_LEVELS, HIGHLIGHT_QUANTILE, HISTOGRAM_STOPS, NEAR_SIGMA,
                                        UPPER_SHARE, RelightConstants, estimate_look, exposure_of, lift_gain,
                                        person_box, scene_of)
from .base import Opt, Stage, StageSpec

SMOOTHING = 0.05  # share of the way to the new estimate per frame
NEW_BACKGROUND = 12.0  # mean level change of the background's 16x16 thumbnail that is a new background
THUMB = 16
IDLE_STOPS = float(np.log2(1.001))  # a lift below this is no lift (foreground applies none)
NOISE_KEEP = 15  # frames a full-size noise measure bounds the idle test (a camera's gain moves slowly;
# then one frame measures again): talking-room, well lit but its highlights low, was never idle with
# a dark room's noise assumed, and paid 3.8 ms a frame of full-size statistics that changed nothing
NOISE_MARGIN = (1.25, 0.1)  # the bound: noise seen x 1.25 + 0.1 levels
CONSTANTS = RelightConstants()


def strength_of(options) -> float:
    """``--relight``, or ``--colour-match`` (its old name) when that is above 0."""
    old = float(getattr(options, "colour_match", 0.0) or 0.0)
    return old if old > 0 else float(options.relight)


class RelightStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.strength = strength_of(options)
        from ..compose.relight_learned import shipped

        self.learned = shipped()  # the learned look, when models/weights/relight.json ships (docs/quality.md)
        self.reset()

    def reset(self) -> None:
        self.look: np.ndarray | None = None  # the smoothed Look vector
        self.log_gain: float | None = None  # the smoothed lift, in stops
        self.log_pivot: float | None = None
        self.thumb: np.ndarray | None = None  # the last background's thumbnail
        self.applied = (Look(), 1.0)  # what the last frame got: (look, lift gain), for measurements
        self.noise_seen: tuple[int, float] | None = None  # (frame index, noisy) of the last full-size measure

    @staticmethod
    def _follow(old, new, snap: bool):
        return new if old is None or snap else old + SMOOTHING * (new - old)

    def foreground(self, fs) -> None:
        if self.idle(fs):
            return  # as on a fused frame: the full-size statistics (3-7 ms a frame) would change nothing
        matte = fs.matte
        box = person_box(matte)
        if box is None:
            return  # nobody: keep what was learnt
        highlight, level = exposure_of(fs.fg, matte, fs.people, fs.size)
        noisy, noise = person_noise(fs.fg, matte, box)
        self.noise_seen = (fs.index, noisy)
        target = float(np.log2(lift_gain(highlight, level, noisy, CONSTANTS))) * self.strength
        self.log_gain = self._follow(self.log_gain, target, False)
        gain = float(np.exp2(self.log_gain))
        self.applied = (self.applied[0], gain)
        if gain > 1.001:
            fs.fg = lift_person(fs.fg, gain, level, noise, box)

    def idle(self, fs) -> bool:
        """Nothing to do on this frame (the fused pass may take it): no look ships, the lift is
        off now and would stay off even if the person were as noisy as a dark room makes them, or
        a little noisier than measured in the last ``NOISE_KEEP`` frames (the upper bound of
        ``lift_gain``, from the working-size frame and matte). A well-lit
        720p file job: 0.26-0.27 of a bare transcode unfused, 0.37-0.39 with this (load 1-2)."""
        if self.learned is not None or CONSTANTS.has_look():
            return False
        if self.log_gain is not None and self.log_gain > IDLE_STOPS:
            return False
        if fs.work_frame is None or fs.work_matte is None:
            return False
        if person_box(fs.work_matte) is None:
            return True  # nobody: foreground keeps what it learnt and changes nothing
        highlight, level = exposure_of(fs.work_frame, fs.work_matte, fs.people, fs.size)
        noisy = CONSTANTS.lift_noisy  # as noisy as a dark room makes a person, unless measured lately
        seen = self.noise_seen
        if seen is not None and 0 <= fs.index - seen[0] <= NOISE_KEEP:
            noisy = min(noisy, seen[1] * NOISE_MARGIN[0] + NOISE_MARGIN[1])
        worst = lift_gain(highlight, level, noisy, CONSTANTS)
        return float(np.log2(worst)) * self.strength <= IDLE_STOPS

    def over(self, fs, background) -> None:
        if self.learned is None and not CONSTANTS.has_look():
            return  # the shipped gains are 0: no statistics to take (a 720p file job: x1.59 -> x1.09 of relight 0)
        matte = fs.matte
        box = person_box(matte)
        if box is None:
            return
        thumb = cv2.resize(background, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
        snap = self.thumb is None or float(np.abs(thumb - self.thumb).mean()) > NEW_BACKGROUND
        self.thumb = thumb
        scene = scene_of(fs.fg, matte, background, fs.people, fs.size)
        look = self.learned(scene) if self.learned is not None else estimate_look(scene, CONSTANTS)
        target = look.vector() * self.strength
        self.look = self._follow(self.look, target, snap)
        look = Look.from_vector(self.look)
        self.log_pivot = self._follow(self.log_pivot, float(np.log2(pivot_of(scene.person, look))), snap)
        self.applied = (look, self.applied[1])
        if look.is_identity():
            return
        x0, y0, x1, y1 = box
        fg = fs.fg.copy()
        fg[y0:y1, x0:x1] = apply_look(fs.fg[y0:y1, x0:x1], look, float(np.exp2(self.log_pivot)))
        fs.fg = fg


STAGE = StageSpec(
    name="relight", phase="compose", make=RelightStage,
    reads=("fg", "matte", "size"), optional=("people",), writes=("fg",), web="relight",
    constants={**CONSTANTS.as_dict(), "smoothing": SMOOTHING, "new_background": NEW_BACKGROUND,
               "far_weight": FAR_WEIGHT, "near_sigma": NEAR_SIGMA, "upper_share": UPPER_SHARE,
               "flat_low": FLAT_LEVELS[0], "flat_high": FLAT_LEVELS[1], "highlight_quantile": HIGHLIGHT_QUANTILE,
               "histogram_low": HISTOGRAM_STOPS[0], "histogram_high": HISTOGRAM_STOPS[1], "noise_clip": NOISE_CLIP, "denoise_clip": DENOISE_CLIP,
               "noise_unit": NOISE_UNIT, "denoise_from": DENOISE_FROM, "denoise_sigma": DENOISE_SIGMA,
               "denoise_space": DENOISE_SPACE},
    summary="the person harmonized to the new background (exposure, white balance, contrast, saturation) "
            "and lifted in low light",
    options=[Opt("relight", 1.0, "harmonize the person's light with the new background and lift a dark "
                 "face, 0..1", low=0, high=1, raw=0.0, live=True, metavar="S"),
             Opt("colour_match", 0.0, "old name of --relight: above 0, the relight strength", low=0, high=1,
                 raw=0.0, live=True, metavar="S")],
    enabled=lambda o: strength_of(o) > 0,
)
