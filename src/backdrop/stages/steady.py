"""Steadying the refined full-size matte with temporal fusion's weights.

The guided refinement takes its edges from the current frame, so sensor and compression noise in
a still frame would make the refined edge shimmer even when the working-size matte is steady
(measured: flicker on the shared talking-head clips, docs/quality.md). Blending with the previous
refined matte where nothing moved removes that; where the image moved the weight is 0 and the
new matte is used. It has no option of its own: it runs whenever temporal fusion runs, on a refined matte or a
matting model's own full-size alpha (a bilinear matte has no edge of its own to shimmer). On RVM's
alpha it cut flicker on the shared static clips by a further 25-50 % with DAVIS unchanged
(docs/quality.md).
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Stage, StageSpec
from .temporal import LET_GO, let_go


class FullSteadier:
    """Per-stream state: the last full-size matte."""

    def __init__(self) -> None:
        self.prev_full: np.ndarray | None = None

    def reset(self) -> None:
        self.prev_full = None

    def __call__(self, full: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
        """``full`` blended with the previous full-size matte by ``weight`` (working size)."""
        prev, w = self.prev_full, weight
        self.prev_full = full
        if prev is None or w is None or prev.shape != full.shape:
            return full
        h, wd = full.shape
        w_up = cv2.resize(w, (wd, h), interpolation=cv2.INTER_LINEAR) if w.shape != full.shape else w
        out = prev - full
        if LET_GO[0] < 1:  # the person left here: do not keep their old edge
            w_up = w_up * let_go(full, prev, *LET_GO)
        out *= w_up
        out += full
        self.prev_full = out
        return out


class SteadyStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.steadier = FullSteadier()

    def full(self, fs) -> None:
        if fs.extra.get("full_from") == "bilinear":
            return  # a bilinear matte has no edge of its own to shimmer
        fs.matte = self.steadier(fs.matte, fs.weight)

    def reset(self) -> None:
        self.steadier.reset()


STAGE = StageSpec(
    name="steady", phase="full", make=SteadyStage,
    summary="refined edges shimmering on still frames: blend with the last refined matte where nothing moved",
    enabled=lambda o: o.temporal > 0,
)
