"""Touch-up: edge-preserving skin smoothing ("beauty") of the person, strength 0..1.

Pores, blemishes and uneven tone on the person's skin are smoothed with the bilateral filter
(Tomasi & Manduchi, "Bilateral Filtering for Gray and Color Images", ICCV 1998), at two scales,
and only where the colour is skin's by the YCrCb range of Chai & Ngan ("Face Segmentation Using
Skin-Color Map in Videophone Applications", IEEE TCSVT 1999) and the matte says person. The
bilateral filter averages only neighbours of similar colour, so strong gradients (eyes, lashes,
eyebrows, lips, nostrils, moles, hair strands) come through unchanged; a texture gate lowers the
effect where the image is densely textured (hair, beard, which skin's colour range also takes).
Off by default: a look, not a correction. Measured on the shared portraits (docs/quality.md).

The algorithm, exactly (the browser's WebGL version follows it; Python below is the reference).
Input: the person's colours ``F`` (RGB uint8, after decontamination and despill), the matte
``a`` (float32 in [0, 1], full size) and the strength ``k`` in [0, 1].

1. Processing size: ``s = min(1, 1080 / min(H, W))`` (frames up to 1080p at their own size, 4K
   at 1080p); ``P`` = ``F`` resized by ``s`` with area averaging. All radii below are in pixels
   of ``P``. (Here only the person's box is processed: where the working-size matte is above
   0.02, plus 16 pixels of ``P``; outside it the output is ``F``, a port may filter everything.)
2. Mid scale: ``m = min(0.5, 360 / min(h, w))`` for ``P``'s ``h x w`` (half size up to 720p, a
   third at 1080p: a face framed alike spans as many mid-pass pixels); ``M`` = ``P`` resized by ``m``
   (area averaging, ``round(w*m) x round(h*m)``); ``M' = bilateral(M, sigma_colour=40)``;
   ``P1 = P + bilinear_up(M' - M)``, rounded and clamped to 0..255 (8 bits here; a float texture
   is as good). Skipped when ``m * min(h, w) < 5``.
3. Fine scale: ``P2 = bilateral(P1, sigma_colour=30)``; the change is ``D = P2 - P`` (float).
4. Skin weight from ``P2``: ``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cr = 0.713 (R - Y) + 128``,
   ``Cb = 0.564 (B - Y) + 128`` (OpenCV's RGB2YCrCb, whose 8-bit Cr and Cb are rounded here;
   unrounded floats move the weight by at most 1/16);
   ``skin = ramp(Cr, 133, 173) * ramp(Cb, 77, 127)`` with
   ``ramp(v, lo, hi) = clamp((v - lo) / 8 + 0.5, 0, 1) * clamp((hi - v) / 8 + 0.5, 0, 1)``
   (1 inside the range, 0.5 on its bounds, 0 four levels outside).
5. Texture gate from ``P`` (not ``P1``): ``Yp`` = its luma as in 4 (OpenCV's RGB2GRAY, 8-bit);
   ``g = |Yp(x+1,y) - Yp(x-1,y)| + |Yp(x,y+1) - Yp(x,y-1)|`` (edge pixels mirrored, OpenCV's
   BORDER_REFLECT_101); ``e = box7(g) / (box7(Yp) + 16)`` with ``box7`` the 7x7 mean (same
   border); ``gate = 1 - smoothstep(0.1, 0.3, e)`` (GLSL's smoothstep). Relative to the local
   brightness, so dark and light skin are treated alike. On the shared portraits the gate
   averages 0.89 on the face's skin and 0.65 on hair of a skin-like colour.
6. ``W = skin * gate * D`` at processing size, resized to full size bilinearly (identity when
   ``s = 1``); the output is ``F + k * a * W``, rounded and clamped to 0..255.

``bilateral`` is ``cv2.bilateralFilter(img, d=5, sigma_colour, sigma_space=2.5)`` on RGB uint8:
for each pixel ``p`` the taps ``q`` are the offsets ``(i, j)`` with ``i, j in -2..2`` and
``i*i + j*j <= 4`` (13 taps: the disc of radius 2), weight
``exp(-(i*i + j*j) / (2 * 2.5^2)) * exp(-c*c / (2 * sigma_colour^2))`` where
``c = |R_p - R_q| + |G_p - G_q| + |B_p - B_q|`` (the L1 distance over the channels, in 0..255
levels); the result is the weighted mean of the taps per channel, rounded. Borders: reflect-101.
``bilinear_up`` and the final resize are ``cv2.resize(INTER_LINEAR)`` (half-pixel centres, as
WebGL's linear sampling). ``tests/test_touch_up.py`` holds a NumPy version of the bilateral that
matches OpenCV's, for checking a port.
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Opt, Stage, StageSpec

PROCESS_SIDE = 1080  # the short side the work is done at, at most (4K at 1080p)
MID_SIDE = 360  # the short side of the mid-scale pass, at most (and at most half the processing size)
DIAMETER = 5  # bilateral taps: radius 2, 13 taps
SIGMA_SPACE = 2.5
SIGMA_MID = 40.0  # colour sigma of the mid-scale pass (blemishes, uneven tone), in L1 levels
SIGMA_FINE = 30.0  # colour sigma at the processing size (pores)
SKIN_CR = (133.0, 173.0)  # Chai & Ngan 1999
SKIN_CB = (77.0, 127.0)
SKIN_SOFT = 8.0  # the ramp's width across a bound, in levels
GATE = (0.1, 0.3)  # relative gradient energy: full effect below, none above
GATE_RADIUS = 3  # the 7x7 box
GATE_OFFSET = 16.0  # added to the local brightness (dark pixels' gradients are not inflated)
MARGIN = 16  # processing pixels around the person's box
BOX_ALPHA = 0.02  # the box holds the matte above this (below it a change would be 2% of the skin's)


def _ramp(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    up = np.clip((v - lo) * (1 / SKIN_SOFT) + 0.5, 0, 1)
    return up * np.clip((hi - v) * (1 / SKIN_SOFT) + 0.5, 0, 1)


_LEVELS = np.arange(256, dtype=np.float32)
_CR_LUT = _ramp(_LEVELS, *SKIN_CR).astype(np.float32)
_CB_LUT = _ramp(_LEVELS, *SKIN_CB).astype(np.float32)


def skin_weight(rgb: np.ndarray) -> np.ndarray:
    """Soft Chai & Ngan skin weight (float32 HxW in [0, 1]) of RGB uint8 ``rgb``: Cr and Cb by
    OpenCV's RGB2YCrCb (8-bit, rounded), each ramp a 256-entry table."""
    ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    return cv2.multiply(cv2.LUT(ycc[..., 1], _CR_LUT), cv2.LUT(ycc[..., 2], _CB_LUT))


def texture_gate(rgb: np.ndarray) -> np.ndarray:
    """1 where the image is as smooth as skin, falling to 0 where it is densely textured (hair)."""
    y = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    g = cv2.add(cv2.convertScaleAbs(cv2.Sobel(y, cv2.CV_16S, 1, 0, ksize=1)),
                cv2.convertScaleAbs(cv2.Sobel(y, cv2.CV_16S, 0, 1, ksize=1)), dtype=cv2.CV_32F)
    k = (2 * GATE_RADIUS + 1, 2 * GATE_RADIUS + 1)
    e = cv2.divide(cv2.blur(g, k), cv2.blur(y.astype(np.float32), k) + GATE_OFFSET)
    t = np.clip((e - GATE[0]) * (1 / (GATE[1] - GATE[0])), 0, 1, out=e)
    return 1.0 - t * t * (3.0 - 2.0 * t)


def bilateral(img: np.ndarray, sigma_colour: float) -> np.ndarray:
    return cv2.bilateralFilter(img, DIAMETER, sigma_colour, SIGMA_SPACE)


def skin_change(p: np.ndarray, mid: float = 0.5, scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Steps 2-6 at processing size: ``skin * gate * (P2 - P)`` times ``scale`` (a number, or an
    HxW array: the strength times the matte when the work is at full size), float32 HxWx3;
    ``mid`` is the mid-scale pass's size relative to ``p``."""
    h, w = p.shape[:2]
    if min(h, w) * mid >= DIAMETER:
        m = cv2.resize(p, (max(1, round(w * mid)), max(1, round(h * mid))), interpolation=cv2.INTER_AREA)
        dm = cv2.subtract(bilateral(m, SIGMA_MID), m, dtype=cv2.CV_16S)
        dm = cv2.resize(dm.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        p1 = cv2.add(p, dm, dtype=cv2.CV_8U)
    else:
        p1 = p
    p2 = bilateral(p1, SIGMA_FINE)
    weight = cv2.multiply(skin_weight(p2), texture_gate(p))
    weight *= scale
    change = cv2.subtract(p2, p, dtype=cv2.CV_32F)
    change *= weight[..., None]
    return change


def person_box(alpha: np.ndarray, pad: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around ``alpha > BOX_ALPHA`` grown by ``pad`` (clipped), or None."""
    rows = np.flatnonzero(alpha.max(axis=1) > BOX_ALPHA)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha.max(axis=0) > BOX_ALPHA)
    h, w = alpha.shape
    return (max(0, cols[0] - pad), max(0, rows[0] - pad), min(w, cols[-1] + 1 + pad), min(h, rows[-1] + 1 + pad))


def touch_up(fg: np.ndarray, alpha: np.ndarray, strength: float,
             box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``fg`` (RGB uint8) with the person's skin smoothed by ``strength`` (0..1); ``alpha`` the
    full-size matte; ``box`` (x0, y0, x1, y1) limits the work (default: the matte's box). A new
    array unless nothing changes; ``fg`` is never written to."""
    if strength <= 0:
        return fg
    h, w = fg.shape[:2]
    s = min(1.0, PROCESS_SIDE / min(h, w))
    mid = min(0.5, MID_SIDE / (s * min(h, w)))
    if box is None:
        box = person_box(alpha, round(MARGIN / s))
        if box is None:
            return fg
    x0, y0, x1, y1 = box
    crop = fg[y0:y1, x0:x1]
    ch, cw = crop.shape[:2]
    if ch == 0 or cw == 0:
        return fg
    pw, ph = max(1, round(cw * s)), max(1, round(ch * s))
    k = strength * alpha[y0:y1, x0:x1]
    if (pw, ph) == (cw, ch):
        change = skin_change(crop, mid, k)
    else:
        p = cv2.resize(crop, (pw, ph), interpolation=cv2.INTER_AREA)
        change = cv2.resize(skin_change(p, mid), (cw, ch), interpolation=cv2.INTER_LINEAR)
        change *= k[..., None]
    out = fg.copy()
    out[y0:y1, x0:x1] = cv2.add(crop, change, dtype=cv2.CV_8U)
    return out


class TouchUpStage(Stage):
    def foreground(self, fs) -> None:
        h, w = fs.frame.shape[:2]
        _, small_a = fs.working_pair()  # the person's box from the small matte: cheap
        sh, sw = small_a.shape
        s = min(1.0, PROCESS_SIDE / min(h, w))
        box = person_box(small_a, 2)
        if box is None:
            return
        kx, ky = w / sw, h / sh
        pad = round(MARGIN / s)
        box = (max(0, int(box[0] * kx) - pad), max(0, int(box[1] * ky) - pad),
               min(w, int(np.ceil(box[2] * kx)) + pad), min(h, int(np.ceil(box[3] * ky)) + pad))
        fs.fg = touch_up(fs.fg, fs.matte, self.options.touch_up, box)


STAGE = StageSpec(
    name="touch_up", phase="compose", make=TouchUpStage,
    reads=("frame", "work_matte", "matte", "fg"), writes=("fg",), web="touch_up",
    summary="skin smoothing (beauty): edge-preserving bilateral on skin-coloured pixels of the person",
    options=[Opt("touch_up", 0.0, "smooth the person's skin, edges kept, 0..1", low=0, high=1, raw=0.0,
                 live=True, metavar="S")],
    enabled=lambda o: o.touch_up > 0,
)
