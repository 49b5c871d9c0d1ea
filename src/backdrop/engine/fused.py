"""The fused full-resolution pass: refinement, the person's colours and the blend in one.

Unfused, three passes run over every pixel of the frame at its full size: the guided upsample
of the working-size matte (refine, then steady), the colour corrections (decontamination,
despill) and the blend ``a*F + (1-a)*B``, each allocating full-size arrays. Most pixels do not
need any of it. At working size the guided coefficients bound the matte of every pixel (between
``b`` and ``b + 255 A`` of its cells), so each tile of the frame (``compose/regions.py``) is
classed before any full-size work:

- ``EXT``: the matte is surely under ``SURE`` (half a level): the output is the background;
- ``INT``: surely above ``1 - SURE`` and no colour correction reaches it: the output is the frame;
- ``BAND``: everything else: the full computation, over rectangles of band tiles only.

A stage takes part through its ``can_fuse`` / ``fuse_*`` hooks (``stages/base.py``); the pass runs
only when every stage that is on can, and the background composites with the plain blend
(``Background.fuses``). Otherwise, or when the caller wants the full-size matte, the unfused path
runs. On band pixels the result is bit-identical to the unfused one; elsewhere it differs by at
most one level (``tests/test_fused.py`` checks both on real frames).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..compose.foreground import apply_correction
from ..compose.regions import BAND, EXT, GAP_TILES, INT, STRIP_PX, Tiles
from .state import FrameState


FUSE_FROM_PIXELS = 1600 * 900
"""Frames smaller than this keep the unfused path. Measured with ``backdrop bench`` on the
office-desk clip (docs/benchmarks.md, Speed): the fused pass took the end-to-end ratio at 1080p
from 0.44 to 0.62 and at 4K from 0.51 to 0.79, but at 720p from 0.42 to 0.37 (its per-frame
output copy and per-band-tile calls cost more than the full-frame passes it saves there)."""


def fusable(pipe: Any, fs: FrameState) -> bool:
    """Whether frame ``fs`` of pipeline ``pipe`` can take the fused pass."""
    if fs.size[0] * fs.size[1] < FUSE_FROM_PIXELS:
        return False
    if fs.canvas is None or fs.small is None or "model_matte" in fs.extra or "model_fg" in fs.extra:
        return False
    full = pipe._hooks["full"]
    if not full or not full[0].spec.upsamples or not pipe.background.fuses(fs):
        return False
    return all(s.can_fuse(fs) for s in pipe.stages if s.spec.phase in ("full", "compose"))


class FusedPass:
    """Per pipeline: the tile geometry of its stream (the buffers live in the stages)."""

    def __init__(self) -> None:
        self.tiles: Tiles | None = None
        self.last_classes: np.ndarray | None = None  # for tests and bench: the last frame's tiles

    def _tiles(self, fs: FrameState) -> Tiles:
        key = (fs.size, fs.canvas.shape)
        if self.tiles is None or (self.tiles.size, self.tiles.grid) != key:
            self.tiles = Tiles(fs.size, fs.canvas.shape)
        return self.tiles

    def __call__(self, pipe: Any, fs: FrameState) -> np.ndarray:
        full, run, timer = pipe._hooks["full"], pipe._run, pipe.timer
        for stage in full:
            run(stage, "fuse_prepare", fs)
        fs.fg = fs.frame
        for stage in pipe._hooks["foreground"]:
            run(stage, "foreground", fs)
        with timer("composite"):
            return self._compose(fs, full, pipe.background)

    def _compose(self, fs: FrameState, full: list, background: Any) -> np.ndarray:
        tiles = self._tiles(fs)
        frame, size, corrections = fs.frame, fs.size, fs.corrections
        bg = background.render(fs.index, frame, None, small=fs.working_pair() if background.needs_frame else None)
        ext = np.ones(tiles.shape, bool)
        inner = np.ones(tiles.shape, bool)
        for stage in full:
            bounds = stage.fuse_bounds(fs, tiles)
            if bounds is not None:
                ext &= bounds[0]
                inner &= bounds[1]
        for corr in corrections:
            inner &= ~tiles.support(corr)
        classes = np.full(tiles.shape, BAND, np.uint8)
        classes[ext] = EXT
        classes[inner & ~ext] = INT
        out = bg.copy()
        for rows, cols in tiles.runs(classes == INT):
            out[rows, cols] = frame[rows, cols]
        k = tiles.align([c.shape[:2] for c in corrections])
        strip = max(1, round(STRIP_PX / tiles.th))
        for rows, cols in tiles.runs(classes == BAND, strip=strip, gap=GAP_TILES, k=k):
            rect = (cols.start, rows.start, cols.stop, rows.stop)
            matte = None
            for stage in full:
                matte = stage.fuse_region(fs, rect, matte)
            fg = frame[rows, cols]
            for corr in corrections:
                fg = apply_correction(fg, corr, size, rect)
            out[rows, cols] = cv2.blendLinear(fg, bg[rows, cols], matte, 1.0 - matte)
        for stage in full:
            stage.fuse_done(fs, tiles, classes)
        self.last_classes = classes
        return out
