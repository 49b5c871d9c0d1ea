"""Despill: remove the old background's colour cast from the person's edge.

A green screen (or a strongly coloured wall) lights the person's rim and shows through their
hair; composited over a new background that becomes a neon fringe. When the old background is a
strong colour of a hue far from skin (the key's colour with ``--key``, else estimated where the
network sees no person: a green or blue screen, a teal wall; never a wooden room or a red wall)
the positive part of that hue is removed from the person's colours in the edge band and a little
way into the person, fading out deeper in (``compose/chroma.py``: the average limiter, brightness
kept). Over an ordinary room nothing is strongly coloured and this stage changes nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compose.foreground import apply_correction
from ..compose.chroma import direction, estimate_key, spill_colour
from .base import Opt, Stage, StageSpec

INWARD = 0.04  # how far into the person spill is removed fully (share of the working long side)


class DespillStage(Stage):
    def foreground(self, fs) -> None:
        small, small_a = fs.working_pair()
        key = fs.key_colour  # the chroma key's colour, a screen the user named
        if key is None:
            key = spill_colour(estimate_key(small, small_a < 0.02))
        if key is None:
            return
        # weight: 1 in the band and INWARD into the person, fading to 1 - strength... deep inside
        edge = ((small_a > 0.01) & (small_a < 0.99)).astype(np.uint8)
        r = max(1, round(INWARD * max(small_a.shape)))
        near = cv2.dilate(edge, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), r / 2)
        weight = self.options.despill * np.clip(np.maximum(near * 1.5, small_a < 0.99), 0, 1)
        weight *= small_a > 0.002  # where no person shows, the colours do not matter
        corr = spill_at_working_size(small, direction(key), weight.astype(np.float32))
        if corr is not None:
            fs.add_correction(corr)


def spill_at_working_size(small: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray | None:
    """The spill correction (float32 HxWx3 levels) at working size, None when there is none."""
    if not weight.any():
        return None
    return -(np.maximum(small.astype(np.float32) @ u, 0.0) * weight)[..., None] * u[None, None]


def spill_correction(fg: np.ndarray, small: np.ndarray, u: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """``fg`` less the spill measured at working size (``small``, ``weight``): the correction is
    smooth, so it is computed small and upsampled once, like decontamination's (full-size work:
    one resize and one saturating add)."""
    corr = spill_at_working_size(small, u, weight)
    return fg if corr is None else apply_correction(fg, corr)


STAGE = StageSpec(
    name="despill", phase="compose", make=DespillStage,
    summary="neon fringe from a green screen or coloured wall: its hue removed from the person's edge",
    reads=("work_frame", "work_matte"), optional=("key_colour",), writes=("corrections",),
    options=[Opt("despill", 1.0, "remove a strongly coloured old background's cast from the edge, 0..1",
                 low=0, high=1, raw=0.0, live=True, metavar="S")],
    enabled=lambda o: o.despill > 0,
)
