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

from ..compose.regions import EXT, INT, crop_resize
from .base import Stage, StageSpec
from .temporal import LET_GO, let_go


class FullSteadier:
    """Per-stream state: the last full-size matte.

    The fused pass (``engine/fused.py``) keeps it in one buffer of its own, updated in place over
    the band only; there it is the exact matte where the last frame had a band and 0 or 1 where
    it was sure (background or interior: the exact value is within ``SURE`` of that). ``classes``
    holds the last frame's tile classes (None: not known).
    """

    def __init__(self) -> None:
        self.prev_full: np.ndarray | None = None
        self.classes: np.ndarray | None = None
        self.owned = False  # prev_full is our buffer (the fused pass may write it in place)

    def reset(self) -> None:
        self.prev_full, self.classes, self.owned = None, None, False

    def __call__(self, full: np.ndarray, weight: np.ndarray | None) -> np.ndarray:
        """``full`` blended with the previous full-size matte by ``weight`` (working size)."""
        prev, w = self.prev_full, weight
        self.prev_full, self.classes, self.owned = full, None, False
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
        self.starting = False  # fused pass, this frame: no last matte to blend with (fuse_begin..fuse_done)

    def full(self, fs) -> None:
        if fs.matte_source == "bilinear":
            return  # a bilinear matte has no edge of its own to shimmer
        fs.matte = self.steadier(fs.matte, fs.past_weight)

    def reset(self) -> None:
        self.steadier.reset()

    # the fused pass: the same blend, over the band only, the last matte kept in one buffer
    def fuse_begin(self, fs) -> None:
        st = self.steadier
        shape = fs.size[::-1]
        self.starting = st.prev_full is None or st.prev_full.shape != shape
        if self.starting:  # nothing to blend with (as when the shapes differ)
            st.prev_full, st.classes, st.owned = np.zeros(shape, np.float32), None, True
        elif not st.owned:  # the last matte came from the unfused path: it may be a caller's array
            st.prev_full, st.owned = st.prev_full.copy(), True

    def fuse_bounds(self, fs, tiles):
        st = self.steadier
        if self.starting or fs.past_weight is None:
            return None  # the matte is the refined one as it is
        if st.classes is None or st.classes.shape != tiles.shape:
            none = np.zeros(tiles.shape, bool)
            return none, none  # the last matte's range is not known: everything is band this frame
        return st.classes == EXT, st.classes == INT

    def fuse_region(self, fs, rect, matte):
        x0, y0, x1, y1 = rect
        prev = self.steadier.prev_full[y0:y1, x0:x1]
        if self.starting or fs.past_weight is None:
            prev[:] = matte
            return matte
        w_up = crop_resize(fs.past_weight, fs.size, rect)
        out = prev - matte
        if LET_GO[0] < 1:
            w_up = w_up * let_go(matte, prev, *LET_GO)
        out *= w_up
        out += matte
        prev[:] = out
        return out

    def fuse_done(self, fs, tiles, classes) -> None:
        """Where a tile became sure this frame, the kept matte becomes 0 or 1 (it was sure before
        in the same way: it already is)."""
        st = self.steadier
        before = None if self.starting else st.classes
        if before is not None and before.shape != classes.shape:
            before = None
        for value, cls in ((0.0, EXT), (1.0, INT)):
            mask = classes == cls if before is None else (classes == cls) & (before != cls)
            for rows, cols in tiles.runs(mask):
                st.prev_full[rows, cols] = value
        st.classes = classes.copy()


STAGE = StageSpec(
    name="steady", phase="full", make=SteadyStage,
    reads=("matte", "past_weight"), optional=("matte_source",), writes=("matte",),
    summary="refined edges shimmering on still frames: blend with the last refined matte where nothing moved",
    enabled=lambda o: o.temporal > 0,
)
