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

A stage takes part through its ``fuse_*`` hooks (``stages/base.py``); whether it can is read off
its declaration (``StageSpec.fuses``: a full-phase stage with ``fuse_region``, a compose stage
that only corrects colours at working size and reads no full-size matte). The pass runs only when
every stage that is on can, and the background composites with the plain blend
(``Background.fuses``). It drives the stages through the pipeline's public ``stages_in`` /
``stages_with`` / ``run_hook``. Otherwise, or when the caller wants the full-size matte, the unfused path
runs. On band pixels the result is bit-identical to the unfused one; elsewhere it differs by at
most one level (``tests/test_fused.py`` checks both on real frames).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..compose.foreground import apply_correction
from ..compose.regions import BAND, EXT, GAP_TILES, INT, STRIP_PX, Tiles
from ..planar import Planar, half, yuv_correction
from .state import FrameState


FUSE_FROM_PIXELS = 1280 * 720
"""Frames smaller than this keep the unfused path. Measured live
(``Pipeline(live=True)``, office-desk scaled, p50 ms, unfused -> fused): 720p blur 24.1 -> 16.5,
image 19.9 -> 16.1; 1080p 19.7 -> 19.1; but 854x480 blur 14.6 -> 16.3 and image 13.3 -> 15.4,
where the whole-frame passes are cheaper than the band's per-rectangle calls. The same for planar
frames in ``backdrop video`` at 854x480 (frames/s, fused -> unfused with the two conversions):
blur 66-77 -> 76-77, image 74-77 -> 84-88; 512x480: 61 -> 76, 60-63 -> 81."""


def fusable(pipe: Any, fs: FrameState) -> bool:
    """Whether frame ``fs`` of pipeline ``pipe`` can take the fused pass."""
    if fs.size[0] * fs.size[1] < FUSE_FROM_PIXELS:
        return False
    if fs.work_matte is None or fs.work_frame is None or fs.model_alpha is not None or fs.model_fg is not None:
        return False
    full = pipe.stages_in("full")
    if not full or not full[0].spec.upsamples or not pipe.background.fuses(fs):
        return False
    return pipe.fuses and all(s.idle(fs) for s in pipe.stages_with("idle") if not s.spec.fuses(s))


class FusedPass:
    """Per pipeline: the tile geometry of its stream (the buffers live in the stages)."""

    def __init__(self) -> None:
        self.tiles: Tiles | None = None
        self.last_classes: np.ndarray | None = None  # for tests and bench: the last frame's tiles

    def _tiles(self, fs: FrameState) -> Tiles:
        key = (fs.size, fs.work_matte.shape, fs.planar is not None)
        if self.tiles is None or (self.tiles.size, self.tiles.grid, self.tiles.even) != key:
            self.tiles = Tiles(fs.size, fs.work_matte.shape, even=fs.planar is not None)
        return self.tiles

    @staticmethod
    def prepare(pipe: Any, fs: FrameState) -> None:
        """The full stages' ``fuse_prepare`` (guided coefficients at working size): no full-size
        work and no stage state, so a file job runs it on the pipeline's thread and
        :meth:`__call__` on another (``Pipeline.stream(defer=True)``)."""
        for stage in pipe.stages_in("full"):
            pipe.run_hook(stage, "fuse_prepare", fs)

    def __call__(self, pipe: Any, fs: FrameState) -> Any:
        """The output of a frame whose :meth:`prepare` ran (the frames of a stream in order):
        the compose stages' colour corrections (working size, on this thread because the
        pipeline's thread is the busier one: 720p 65-67 -> 69-71 frames/s measured), then the
        full-size pass."""
        full, run, timer = pipe.stages_in("full"), pipe.run_hook, pipe.timer
        fs.fg = None if fs.planar is not None else fs.frame
        for stage in pipe.stages_with("foreground"):
            if stage.spec.fuses(stage):  # the others said they are idle on this frame (fusable)
                run(stage, "foreground", fs)
        for stage in full:
            run(stage, "fuse_begin", fs)
        with timer("composite"):
            tiles = self._tiles(fs)
            if fs.planar is not None:
                corr = yuv_correction(fs.corrections)
                classes = self._classes(fs, full, tiles, [] if corr is None else [corr])
                out = self._compose_planar(fs, full, pipe.background, tiles, classes, corr)
            else:
                classes = self._classes(fs, full, tiles, fs.corrections)
                out = self._compose(fs, full, pipe.background, tiles, classes)
            for stage in full:
                stage.fuse_done(fs, tiles, classes)
            self.last_classes = classes
            return out

    @staticmethod
    def _classes(fs: FrameState, full: list, tiles: Tiles, corrections: list) -> np.ndarray:
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
        return classes

    @staticmethod
    def _bands(fs: FrameState, tiles: Tiles, classes: np.ndarray, grids: list) -> list:
        strip = max(1, round(STRIP_PX / tiles.th))
        return tiles.runs(classes == BAND, strip=strip, gap=GAP_TILES, k=tiles.align(grids))

    @staticmethod
    def _matte(fs: FrameState, full: list, rect: tuple[int, int, int, int]) -> np.ndarray:
        matte = None
        for stage in full:
            matte = stage.fuse_region(fs, rect, matte)
        return matte

    def _compose(self, fs: FrameState, full: list, background: Any, tiles: Tiles, classes: np.ndarray) -> np.ndarray:
        frame, size, corrections = fs.frame, fs.size, fs.corrections
        bg = background.render(fs.index, frame, None, working=fs.working_pair() if background.needs_frame else None)
        out = bg.copy()
        for rows, cols in tiles.runs(classes == INT):
            out[rows, cols] = frame[rows, cols]
        for rows, cols in self._bands(fs, tiles, classes, [c.shape[:2] for c in corrections]):
            rect = (cols.start, rows.start, cols.stop, rows.stop)
            matte = self._matte(fs, full, rect)
            fg = frame[rows, cols]
            for corr in corrections:
                fg = apply_correction(fg, corr, size, rect)
            out[rows, cols] = cv2.blendLinear(fg, bg[rows, cols], matte, 1.0 - matte)
        return out

    def _compose_planar(self, fs: FrameState, full: list, background: Any, tiles: Tiles,
                        classes: np.ndarray, corr: np.ndarray | None) -> Planar:
        """The same over YUV 4:2:0 planes: luma blended at full size with the matte, chroma at half
        size with the matte's 2x2 means; corrections as the Y/U/V changes of their RGB levels."""
        src, size = fs.planar, fs.size
        corr = None if corr is None else [np.ascontiguousarray(corr[..., k]) for k in range(3)]
        half_size = (size[0] // 2, size[1] // 2)
        bg = background.render_planar(fs)
        out = bg.copy()
        out.paste(src, tiles.runs(classes == INT))
        planes, bg_planes, out_planes = src.planes, bg.planes, out.planes
        for rows, cols in self._bands(fs, tiles, classes, [] if corr is None else [corr[0].shape]):
            rect = (cols.start, rows.start, cols.stop, rows.stop)
            matte = self._matte(fs, full, rect)
            hr, hc = half(rows), half(cols)
            hrect = (hc.start, hr.start, hc.stop, hr.stop)
            small_matte = cv2.resize(matte, (hc.stop - hc.start, hr.stop - hr.start), interpolation=cv2.INTER_AREA)
            for k in range(3):
                at, where, m = (size, (rows, cols), matte) if k == 0 else (half_size, (hr, hc), small_matte)
                fg = planes[k][where]
                if corr is not None:
                    fg = apply_correction(fg, corr[k], at, rect if k == 0 else hrect)
                out_planes[k][where] = cv2.blendLinear(fg, bg_planes[k][where], m, 1.0 - m)
        return out
