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
STRIP_PX = 96  # a band rectangle is about this many rows high (96 over 48: 10 % less compose time at 720p, measured)
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
    """The frame (``size`` = (w, h)) cut into blocks of the matte's working grid ``grid`` (h, w).

    ``even``: tiles of an even number of pixels (two blocks where one is odd), so that every
    rectangle also lies on the 2x2 blocks of 4:2:0 chroma (``planar.py``)."""

    def __init__(self, size: tuple[int, int], grid: tuple[int, int], even: bool = False):
        self.size, self.grid, self.even = size, grid, even
        w, h = size
        self.cx, self.tw = block(grid[1], w)
        self.cy, self.th = block(grid[0], h)
        if even and self.tw % 2:
            self.cx, self.tw = 2 * self.cx, 2 * self.tw
        if even and self.th % 2:
            self.cy, self.th = 2 * self.cy, 2 * self.th
        self.nx, self.ny = w // self.tw, h // self.th
        self.shape = (self.ny, self.nx)

    def pool(self, cells: np.ndarray, every: bool) -> np.ndarray:
        """A map of the matte's grid to tiles: all (``every``) or any of each tile's cells."""
        # a min (max) filter over each tile's cells, read at the tiles' corners: 20x faster than
        # numpy's all/any over two strided axes (0.02 against 0.43 ms for 512x288, measured)
        u = np.ascontiguousarray(cells, dtype=np.uint8)
        f = cv2.erode if every else cv2.dilate
        return f(u, np.ones((self.cy, self.cx), np.uint8), anchor=(0, 0))[::self.cy, ::self.cx] > 0

    def support(self, corr: np.ndarray) -> np.ndarray:
        """Tiles that an upsampled correction (any grid, HxW or HxWx3) may change: its nonzero
        cells grown by two cells (bilinear reach and rounding of the tile edges)."""
        nz = (corr != 0).any(axis=2) if corr.ndim == 3 else corr != 0
        nz = cv2.dilate(nz.astype(np.uint8), np.ones((5, 5), np.uint8))
        w, h = self.size
        rows = np.maximum.reduceat(nz, _starts(nz.shape[0], self.ny, self.th, h), axis=0)
        return np.maximum.reduceat(rows, _starts(nz.shape[1], self.nx, self.tw, w), axis=1) > 0

    def align(self, grids: list[tuple[int, int]]) -> tuple[int, int]:
        """Tiles per rectangle edge (x, y) so that rectangles also lie on the blocks of ``grids``
        (for ``even`` tiles: at full size and, halved, on the chroma planes)."""
        w, h = self.size
        lx = lcm(self.tw, *(block(gw, w)[1] for _, gw in grids))
        ly = lcm(self.th, *(block(gh, h)[1] for gh, _ in grids))
        if self.even:
            lx = lcm(lx, *(2 * block(gw, w // 2)[1] for _, gw in grids))
            ly = lcm(ly, *(2 * block(gh, h // 2)[1] for gh, _ in grids))
        return lx // self.tw, ly // self.th

    def runs(self, mask: np.ndarray, strip: int = 1, gap: int = 0, k: tuple[int, int] = (1, 1)
             ) -> list[tuple[slice, slice]]:
        """Rectangles (row slice, column slice at full size) covering the True tiles of ``mask``:
        strips of ``strip`` tile rows, runs of columns, gaps under ``gap`` tiles closed, edges
        snapped to multiples of ``k`` tiles. Rectangles never overlap.

        Vectorised over all strips at once: it runs several times a frame (the fused pass and the
        steady stage), and a loop over tile rows cost 0.4 ms a call at 720p (profiled)."""
        kx, ky = k
        strip = max(ky, -(-strip // ky) * ky)
        n = -(-self.ny // strip)
        rows_any = np.zeros((n * strip, self.nx), bool)
        rows_any[:self.ny] = mask
        cols = rows_any.reshape(n, strip, self.nx).any(axis=1)
        edges = np.diff(np.pad(cols.view(np.int8), ((0, 0), (1, 1))), axis=1)
        r_start, a = np.nonzero(edges > 0)
        _, b = np.nonzero(edges < 0)  # the same order: row by row, left to right
        if not len(a):
            return []
        a = a // kx * kx
        b = np.minimum(self.nx, -(-b // kx) * kx)
        # a span joins the one before it in its strip when the gap between them is at most ``gap``
        # (after snapping, ends never decrease along a strip, so the previous span's end is enough)
        new = np.ones(len(a), bool)
        new[1:] = (r_start[1:] != r_start[:-1]) | (a[1:] - b[:-1] > gap)
        starts = a[new]
        ends = np.maximum.reduceat(b, np.flatnonzero(new))
        strips = r_start[new]
        return [(slice(r * strip * self.th, min(self.ny, (r + 1) * strip) * self.th), slice(a0 * self.tw, b0 * self.tw))
                for r, a0, b0 in zip(strips.tolist(), starts.tolist(), ends.tolist())]
