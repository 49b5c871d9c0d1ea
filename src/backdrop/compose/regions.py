"""Tiles of the frame for the fused full-resolution pass (refine + foreground + blend in one).

The working-size grids (the matte's, the colour corrections') map onto the frame in blocks:
``gcd(src, dst)`` blocks per axis, each ``src/g`` cells wide at working size and ``dst/g`` pixels
wide at full size (512 -> 1280: 2 cells to 5 pixels). A crop of the frame that starts and ends on
such block edges, upsampled from the matching working-size crop with one block of margin, is
bit-identical to the same pixels of the whole frame upsampled (:func:`crop_resize`; checked by
``tests/test_fused.py``). A *tile* is one block of the matte's grid; the fused pass classifies
every tile as background, band or interior (``EXT``, ``BAND``, ``INT``) and runs the full
computation only over runs of band tiles.
"""

from __future__ import annotations

from math import gcd, lcm

import cv2
import numpy as np

EXT, BAND, INT = 0, 1, 2
SURE = 0.5 / 255  # a matte within this of 0 (1) is the background (frame): under half a level
STRIP_PX = 48  # a band rectangle is about this many rows high
GAP_TILES = 6  # band runs closer than this in a strip are computed as one rectangle


def block(src: int, dst: int) -> tuple[int, int]:
    """(cells, pixels) of one block: ``src`` cells map onto ``dst`` pixels in ``gcd`` blocks."""
    g = gcd(src, dst)
    return src // g, dst // g


def crop_resize(src: np.ndarray, size: tuple[int, int], rect: tuple[int, int, int, int]) -> np.ndarray:
    """``cv2.resize(src, size, INTER_LINEAR)[y0:y1, x0:x1]`` without resizing the rest: ``rect``
    (x0, y0, x1, y1) must lie on ``src``'s block edges (single-channel or 3-channel arrays)."""
    w, h = size
    x0, y0, x1, y1 = rect
    sh, sw = src.shape[:2]
    if (sh, sw) == (h, w):
        return src[y0:y1, x0:x1]
    sbx, dbx = block(sw, w)
    sby, dby = block(sh, h)
    sx0, sx1, sy0, sy1 = x0 // dbx * sbx, x1 // dbx * sbx, y0 // dby * sby, y1 // dby * sby
    px0, px1 = int(sx0 > 0), int(sx1 < sw)
    py0, py1 = int(sy0 > 0), int(sy1 < sh)
    crop = src[sy0 - py0 * sby:sy1 + py1 * sby, sx0 - px0 * sbx:sx1 + px1 * sbx]
    up = cv2.resize(crop, (x1 - x0 + (px0 + px1) * dbx, y1 - y0 + (py0 + py1) * dby),
                    interpolation=cv2.INTER_LINEAR)
    return up[py0 * dby:py0 * dby + y1 - y0, px0 * dbx:px0 * dbx + x1 - x0]


def _starts(cells: int, tiles: int, tile: int, full: int) -> np.ndarray:
    """First cell (of ``cells`` over ``full`` pixels) that each tile of ``tile`` pixels touches."""
    return (np.arange(tiles) * tile * cells) // full


class Tiles:
    """The frame (``size`` = (w, h)) cut into blocks of the matte's working grid ``grid`` (h, w)."""

    def __init__(self, size: tuple[int, int], grid: tuple[int, int]):
        self.size, self.grid = size, grid
        w, h = size
        self.cx, self.tw = block(grid[1], w)
        self.cy, self.th = block(grid[0], h)
        self.nx, self.ny = w // self.tw, h // self.th
        self.shape = (self.ny, self.nx)

    def pool(self, cells: np.ndarray, every: bool) -> np.ndarray:
        """A map of the matte's grid to tiles: all (``every``) or any of each tile's cells."""
        t = cells.reshape(self.ny, self.cy, self.nx, self.cx)
        return t.all(axis=(1, 3)) if every else t.any(axis=(1, 3))

    def expand(self, tiles: np.ndarray) -> np.ndarray:
        """A tile map back onto the matte's grid (each cell takes its tile's value)."""
        return np.repeat(np.repeat(tiles, self.cy, axis=0), self.cx, axis=1)

    def support(self, corr: np.ndarray) -> np.ndarray:
        """Tiles that an upsampled correction (any grid, HxW or HxWx3) may change: its nonzero
        cells grown by two cells (bilinear reach and rounding of the tile edges)."""
        nz = (corr != 0).any(axis=2) if corr.ndim == 3 else corr != 0
        nz = cv2.dilate(nz.astype(np.uint8), np.ones((5, 5), np.uint8))
        w, h = self.size
        rows = np.maximum.reduceat(nz, _starts(nz.shape[0], self.ny, self.th, h), axis=0)
        return np.maximum.reduceat(rows, _starts(nz.shape[1], self.nx, self.tw, w), axis=1) > 0

    def align(self, grids: list[tuple[int, int]]) -> tuple[int, int]:
        """Tiles per rectangle edge (x, y) so that rectangles also lie on the blocks of ``grids``."""
        w, h = self.size
        lx = lcm(self.tw, *(block(gw, w)[1] for _, gw in grids))
        ly = lcm(self.th, *(block(gh, h)[1] for gh, _ in grids))
        return lx // self.tw, ly // self.th

    def runs(self, mask: np.ndarray, strip: int = 1, gap: int = 0, k: tuple[int, int] = (1, 1)
             ) -> list[tuple[slice, slice]]:
        """Rectangles (row slice, column slice at full size) covering the True tiles of ``mask``:
        strips of ``strip`` tile rows, runs of columns, gaps under ``gap`` tiles closed, edges
        snapped to multiples of ``k`` tiles. Rectangles never overlap."""
        kx, ky = k
        strip = max(ky, -(-strip // ky) * ky)
        out = []
        for r0 in range(0, self.ny, strip):
            r1 = min(self.ny, r0 + strip)
            cols = mask[r0:r1].any(axis=0)
            if not cols.any():
                continue
            idx = np.flatnonzero(np.diff(np.concatenate(([0], cols.view(np.int8), [0]))))
            spans = []
            for a, b in zip(idx[0::2], idx[1::2]):
                a, b = a // kx * kx, min(self.nx, -(-b // kx) * kx)
                if spans and a - spans[-1][1] <= gap:
                    spans[-1][1] = max(spans[-1][1], b)
                else:
                    spans.append([a, b])
            rows = slice(r0 * self.th, r1 * self.th)
            out.extend((rows, slice(a * self.tw, b * self.tw)) for a, b in spans)
        return out
