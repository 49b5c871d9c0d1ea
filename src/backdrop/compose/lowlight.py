"""Low light and backlight: lift a dark person with a tone curve, and keep their noise down.

A dark room or a window behind the person leaves their face a few stops under a natural level.
The lift is an exposure gain with a shoulder, in linear light, per channel:
``y = g x / (1 + (g^3 - 1) x^3)^(1/3)``: the shadows and mid-tones (where a dark face is) get
the full gain ``g``, so the face keeps its own contrast and colour, the highlights roll off to
white instead of clipping (a window stays a window), and ``g = 1`` is exactly no change, so a
lift that sets in or fades out never jumps (the first form, ``h(g x) / h(g)`` with
``h(z) = z / (1 + z^3)^(1/3)``, is the same for a real lift but brightened the shadows by a
quarter already at ``g = 1.001``: a 12-level step on the greenscreen clip, ``benchmarks/harmonize.py --flicker``). ``g`` comes from the
face's level (``relight_estimate.lift_gain``). As one curve per level it is a 256-entry table.

Brightening multiplies the sensor's noise by the curve's slope. It is measured in the input
(Immerkaer, "Fast Noise Variance Estimation", CVIU 1996: the Laplacian-difference kernel, here
clipped so skin texture and edges count little) over the person's interior, carried
through the slope at the face's level, and the lifted person is smoothed with a bilateral filter
(Tomasi & Manduchi, ICCV 1998) whose colour sigma follows that noise: grain goes, edges whose
contrast is well above the noise stay. A clean, well-lit person gets no lift and no smoothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from .relight import TO_LINEAR, to_srgb

SHOULDER = 3.0  # the power of the shoulder: 3 keeps a face at 0.1-0.2 linear within 3% of the plain gain
NOISE_KERNEL = np.float32([[1, -2, 1], [-2, 4, -2], [1, -2, 1]])  # Immerkaer 1996; sum of squares 36
NOISE_CLIP = 12.0  # levels of the kernel's output: telling noisy from clean
DENOISE_CLIP = 48.0  # ... measuring how noisy
NOISE_UNIT = 6.0 * float(np.sqrt(2.0 / np.pi))
NOISE_SIDE = 384  # the noise is measured on at most this square of the person, at full resolution
DENOISE_FROM = 1.0  # output noise (levels) below which no smoothing is done
DENOISE_SIGMA = 5.0  # bilateral colour sigma per level of (grey) noise: two noisy pixels lie 3.4 sigma apart in
# OpenCV's L1 colour distance over RGB, and grey noise is 0.67 of each channel's; 5 measured best of 3.5/5/7/10
# on the shared portraits (fine-scale error 0.60x the unsmoothed lift's, 3.5: 0.68x, 10: 0.62x)
DENOISE_DIAMETER = 5
DENOISE_SPACE = 2.0


def lift_table(gain: float) -> np.ndarray:
    """The lift for ``gain`` as a table of 256 sRGB levels (uint8); ``gain`` 1 is the identity."""
    if gain <= 1.0 + 1e-4:
        return np.arange(256, dtype=np.uint8)
    x = TO_LINEAR.astype(np.float64)
    y = gain * x / np.power(1.0 + (gain**SHOULDER - 1.0) * np.power(x, SHOULDER), 1.0 / SHOULDER)
    return to_srgb(y.astype(np.float32))


def noise_level(grey: np.ndarray, mask: np.ndarray, clip: float = NOISE_CLIP) -> float:
    """The noise (levels, as a Gaussian's standard deviation) of ``grey`` (uint8 or float) where
    ``mask`` is true: Immerkaer's kernel, its magnitude clipped at ``clip`` (texture and edges
    count no more than a little noise does) and averaged, over ``6 sqrt(2 / pi)`` (the mean
    magnitude of the kernel on unit Gaussian noise). Clipped at ``NOISE_CLIP`` it saturates near
    2 levels, which is enough to tell a noisy dark room from a clean photo (AUC 0.94 on the shared
    portraits against 0.91 for the median); ``DENOISE_CLIP`` keeps up with the noise of a dark
    webcam (5 levels) for the smoothing. A mean, unlike a median, the page can take on the GPU."""
    return noise_levels(grey, mask, (clip,))[0]


def noise_levels(grey: np.ndarray, mask: np.ndarray, clips: tuple[float, ...]) -> tuple[float, ...]:
    """:func:`noise_level` for several clips at once (one filtering)."""
    if mask.sum() < 64:
        return tuple(0.0 for _ in clips)
    c = np.abs(cv2.filter2D(grey.astype(np.float32), -1, NOISE_KERNEL, borderType=cv2.BORDER_REFLECT_101))[mask]
    return tuple(float(np.minimum(c, k).mean() / NOISE_UNIT) for k in clips)


def person_noise(rgb: np.ndarray, matte: np.ndarray, box: tuple[int, int, int, int] | None = None
                 ) -> tuple[float, float]:
    """(noisy, noise): :func:`noise_level` of the person's interior clipped at ``NOISE_CLIP`` (is
    it noisy?) and at ``DENOISE_CLIP`` (how noisy?), where ``matte`` (float32, same size) is above
    0.9, eroded 2 pixels so the outline's edge takes no part, within the middle ``NOISE_SIDE``
    pixels of ``box`` (x0, y0, x1, y1): noise is a property of pixels, so a sample of them at
    full resolution will do (1 ms at 1080p instead of 12 for the whole person)."""
    x0, y0, x1, y1 = box or (0, 0, rgb.shape[1], rgb.shape[0])
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    x0, x1 = max(x0, cx - NOISE_SIDE // 2), min(x1, cx + NOISE_SIDE // 2)
    y0, y1 = max(y0, cy - NOISE_SIDE // 2), min(y1, cy + NOISE_SIDE // 2)
    inside = cv2.erode((matte[y0:y1, x0:x1] > 0.9).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    noisy, noise = noise_levels(cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY), inside,
                                (NOISE_CLIP, DENOISE_CLIP))
    return noisy, noise


def lift_person(rgb: np.ndarray, gain: float, face_level: float, noise: float,
                box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``rgb`` (RGB uint8) with the person lifted by ``gain`` within ``box`` (x0, y0, x1, y1;
    default all) and the brightened ``noise`` (levels, measured before the lift) smoothed: it is
    carried through the curve's slope at the face's level (``face_level``, linear). A new array;
    ``rgb`` is not written to."""
    table = lift_table(gain)
    if table[128] == 128 and table[32] == 32:
        return rgb
    x0, y0, x1, y1 = box or (0, 0, rgb.shape[1], rgb.shape[0])
    crop = rgb[y0:y1, x0:x1]
    if crop.size == 0:
        return rgb
    lifted = cv2.LUT(crop, table)
    level = int(np.clip(np.searchsorted(TO_LINEAR, face_level), 4, 251))
    slope = (float(table[level + 4]) - float(table[level - 4])) / 8.0
    sigma_out = noise * max(slope, 1.0)
    if sigma_out > DENOISE_FROM:
        lifted = cv2.bilateralFilter(lifted, DENOISE_DIAMETER, DENOISE_SIGMA * sigma_out, DENOISE_SPACE)
    out = rgb.copy()
    out[y0:y1, x0:x1] = lifted
    return out
