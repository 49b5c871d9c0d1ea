"""AMD FidelityFX Super Resolution 1 (FSR 1) on one plane, in NumPy: the strong classical anchor.

Re-implemented (our code) from AMD's published description of the algorithm in ``ffx_fsr1.h``
(FidelityFX-FSR v1.0, MIT licence, 2021):

- **EASU** (Edge-Adaptive Spatial Upsampling): for each output pixel, the 12 nearest input
  pixels (``b c / e f g h / i j k l / n o``) are weighted by a 2-lobe Lanczos approximation
  ``(25/16 (2/5 x^2 - 1)^2 - 9/16) (lob x^2 - 1)^2`` evaluated in a frame rotated to the local
  gradient direction and stretched along the edge. Direction and "edge-ness" come from the
  ``+``-shaped luma differences around the 4 nearest pixels, blended bilinearly; the result is
  clamped to the min/max of those 4 pixels, which removes the ringing of the negative lobe.
- **RCAS** (Robust Contrast-Adaptive Sharpening): a 5-tap cross ``(w (n+e+s+w) + m) / (4w + 1)``
  whose negative lobe ``w`` is the largest that cannot push the result out of [0, 1] given the
  ring's min and max, limited to ``-(1/4 - 1/16)`` and scaled by ``2^-sharpness`` (stops).

The GPU version packs the taps in gathers and uses approximate reciprocals; here every term is
exact float32 and the 4 output-pixel phases of a 2x upscale are computed as whole arrays. Planes
are in [0, 1] (gamma-encoded, as FSR expects; the luma of one plane is the plane itself).
"""

from __future__ import annotations

import numpy as np

RCAS_LIMIT = 0.25 - 1.0 / 16.0
DEFAULT_SHARPNESS = 0.2  # stops: AMD's samples and most integrations default to 0.2


def _sat(x):
    return np.clip(x, 0.0, 1.0)


def _ratio(num, den):
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _edge(lA, lB, lC, lD, lE):
    """Direction (dx, dy) and edge length of the '+' around C (FsrEasuSet without the weight)."""
    dir_x, dir_y = lD - lB, lE - lA
    len_x = _sat(_ratio(np.abs(dir_x), np.maximum(np.abs(lD - lC), np.abs(lC - lB)))) ** 2
    len_y = _sat(_ratio(np.abs(dir_y), np.maximum(np.abs(lE - lC), np.abs(lC - lA)))) ** 2
    return dir_x, dir_y, len_x + len_y


def easu_2x(plane: np.ndarray) -> np.ndarray:
    """EASU of a float32 (H, W) plane in [0, 1] to (2H, 2W)."""
    x = np.asarray(plane, np.float32)
    h, w = x.shape
    pad = np.pad(x, 2, mode="edge")  # taps reach -2..+2 around each input pixel (clamped reads)
    out = np.empty((2 * h, 2 * w), np.float32)
    for oy in (0, 1):
        for ox in (0, 1):
            # output pixel 2X+o sits at input X + o/2 - 1/4: 'f' is X-1 (o=0, fraction 3/4) or X (1/4)
            fy, fx = 1 + oy, 1 + ox  # 'f' in the padded plane, for X = 0
            ppx, ppy = np.float32(0.75 if ox == 0 else 0.25), np.float32(0.75 if oy == 0 else 0.25)

            def t(dx, dy):
                return pad[fy + dy:fy + dy + h, fx + dx:fx + dx + w]

            b, c = t(0, -1), t(1, -1)
            e, f, g, hh = t(-1, 0), t(0, 0), t(1, 0), t(2, 0)
            i, j, k, ll = t(-1, 1), t(0, 1), t(1, 1), t(2, 1)
            n, o = t(0, 2), t(1, 2)
            dirx = np.zeros((h, w), np.float32)
            diry = np.zeros((h, w), np.float32)
            length = np.zeros((h, w), np.float32)
            # the '+' (top, left, centre, right, bottom) around each of the 4 nearest pixels,
            # weighted bilinearly; luma is 2x the plane (FSR's R/2 + G + B/2 of a grey pixel)
            for wgt, cross in (((1 - ppx) * (1 - ppy), (b, e, f, g, j)), (ppx * (1 - ppy), (c, f, g, hh, k)),
                               ((1 - ppx) * ppy, (f, i, j, k, n)), (ppx * ppy, (g, j, k, ll, o))):
                dx_, dy_, ln = _edge(*(2.0 * v for v in cross))
                dirx += dx_ * wgt
                diry += dy_ * wgt
                length += ln * wgt
            dir_r = dirx * dirx + diry * diry
            zero = dir_r < 1.0 / 32768.0
            inv = np.where(zero, 1.0, 1.0 / np.sqrt(np.maximum(dir_r, 1e-30))).astype(np.float32)
            dirx = np.where(zero, 1.0, dirx) * inv
            diry = diry * inv
            length = (length * 0.5) ** 2
            stretch = (dirx * dirx + diry * diry) / np.maximum(np.abs(dirx), np.abs(diry))
            len_x = 1.0 + (stretch - 1.0) * length
            len_y = 1.0 - 0.5 * length
            lob = 0.5 + ((1.0 / 4.0 - 0.04) - 0.5) * length
            clp = 1.0 / lob
            acc = np.zeros((h, w), np.float32)
            wsum = np.zeros((h, w), np.float32)
            for (tx, ty), v in (((0, -1), b), ((1, -1), c), ((-1, 1), i), ((0, 1), j), ((0, 0), f), ((-1, 0), e),
                                ((1, 1), k), ((2, 1), ll), ((2, 0), hh), ((1, 0), g), ((1, 2), o), ((0, 2), n)):
                offx, offy = np.float32(tx) - ppx, np.float32(ty) - ppy
                vx = (offx * dirx + offy * diry) * len_x
                vy = (offx * -diry + offy * dirx) * len_y
                d2 = np.minimum(vx * vx + vy * vy, clp)
                wb = (2.0 / 5.0 * d2 - 1.0) ** 2
                wa = (lob * d2 - 1.0) ** 2
                wt = (25.0 / 16.0 * wb - (25.0 / 16.0 - 1.0)) * wa
                acc += v * wt
                wsum += wt
            lo = np.minimum(np.minimum(f, g), np.minimum(j, k))
            hi = np.maximum(np.maximum(f, g), np.maximum(j, k))
            out[oy::2, ox::2] = np.clip(acc / wsum, lo, hi)
    return out


def rcas(plane: np.ndarray, sharpness: float = DEFAULT_SHARPNESS) -> np.ndarray:
    """RCAS of a float32 (H, W) plane in [0, 1] (same size out)."""
    p = np.pad(np.asarray(plane, np.float32), 1, mode="edge")
    b, d, e, f, h = p[:-2, 1:-1], p[1:-1, :-2], p[1:-1, 1:-1], p[1:-1, 2:], p[2:, 1:-1]
    mn4 = np.minimum(np.minimum(b, d), np.minimum(f, h))
    mx4 = np.maximum(np.maximum(b, d), np.maximum(f, h))
    hit_min = _ratio(mn4, 4.0 * mx4)
    hit_max = (1.0 - mx4) / (4.0 * mn4 - 4.0 - 1e-12)
    lobe = np.maximum(-hit_min, hit_max)
    lobe = np.maximum(-RCAS_LIMIT, np.minimum(lobe, 0.0)) * np.float32(2.0 ** -sharpness)
    return ((lobe * (b + d + f + h) + e) / (4.0 * lobe + 1.0)).astype(np.float32)


def fsr1_2x(plane_u8: np.ndarray, sharpness: float = DEFAULT_SHARPNESS, *, sharpen: bool = True) -> np.ndarray:
    """FSR 1 (EASU then RCAS) of a uint8 plane to twice its size, uint8."""
    up = easu_2x(plane_u8.astype(np.float32) / 255.0)
    if sharpen:
        up = rcas(up, sharpness)
    return np.clip(np.rint(up * 255.0), 0, 255).astype(np.uint8)


__all__ = ["DEFAULT_SHARPNESS", "easu_2x", "fsr1_2x", "rcas"]
