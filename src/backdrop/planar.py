"""Frames in the codec's own format: 8-bit YUV 4:2:0 (I420), BT.601 limited range.

H.264 files decode to YUV 4:2:0 and the encoder wants YUV 4:2:0 back. The RGB API converts every
whole frame to RGB after decoding and back before encoding, and every full-size pass then moves
3 bytes a pixel. File jobs instead keep the decoded planes (1.5 bytes a pixel) and the fused pass
(``engine/fused.py``) blends luma at full size and chroma at half size: the matte is the same, the
blend ``a*F + (1-a)*B`` is linear, and so commutes with the (affine) colour matrix; only the
working-size image the network sees is converted to RGB. The public API stays RGB uint8 HxWx3:
a :class:`Planar` is made only by the video reader when asked (``VideoReader(planar=True)``) and
understood only by the pipeline's file loop and the video writer.

The matrix is BT.601 with limited range (Y 16..235), OpenCV's I420 conversions: the ones the
encoder's own RGB -> YUV step (swscale's default) uses, to within 0.05 levels on the shared clips.
"""

from __future__ import annotations

import cv2
import numpy as np

from .resize import downscale

# YUV (limited range) -> RGB, as a 3x4 affine matrix for cv2.transform on [Y, U, V] pixels
_YUV2RGB = np.array([[1.164383, 0.0, 1.596027], [1.164383, -0.391762, -0.812968], [1.164383, 2.017232, 0.0]],
                    np.float32)
YUV_TO_RGB = np.hstack([_YUV2RGB, (-_YUV2RGB @ np.array([16.0, 128.0, 128.0], np.float32))[:, None]])
RGB_DELTA_TO_YUV = np.array([[0.256788, 0.504129, 0.097906], [-0.148223, -0.290993, 0.439216],
                             [0.439216, -0.367788, -0.071427]], np.float32)
"""An RGB *change* (a colour correction, in levels) as the change of Y, U and V it makes."""

Y_TO_GREY = np.clip(np.rint((np.arange(256) - 16) * 255.0 / 219.0), 0, 255).astype(np.uint8)
"""Luma to the full-range grey of ``cv2.COLOR_RGB2GRAY`` (0.299 R + 0.587 G + 0.114 B), a LUT."""


class Planar:
    """One I420 frame: ``data`` is uint8 (H*3/2, W), the Y plane then U then V (even W and H)."""

    __slots__ = ("data", "width", "height")

    def __init__(self, data: np.ndarray, width: int | None = None, height: int | None = None):
        rows, w = data.shape
        self.data, self.width, self.height = data, int(width or w), int(height or rows * 2 // 3)

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> "Planar":
        h, w = rgb.shape[:2]
        return cls(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), w, h)

    @classmethod
    def blank(cls, width: int, height: int) -> "Planar":
        return cls(np.empty((height * 3 // 2, width), np.uint8), width, height)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def y(self) -> np.ndarray:
        return self.data[:self.height]

    def chroma(self, k: int) -> np.ndarray:
        """The U (k=1) or V (k=2) plane, (H/2, W/2)."""
        w, h = self.width, self.height
        q = (w // 2) * (h // 2)
        flat = self.data.reshape(-1)[w * h + (k - 1) * q:w * h + k * q]
        return flat.reshape(h // 2, w // 2)

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.chroma(1), self.chroma(2)

    def copy(self) -> "Planar":
        return Planar(self.data.copy(), self.width, self.height)

    def to_rgb(self) -> np.ndarray:
        """The whole frame as RGB uint8 HxWx3."""
        return cv2.cvtColor(self.data, cv2.COLOR_YUV2RGB_I420)

    def crop_rgb(self, box: tuple[int, int, int, int] | None) -> np.ndarray:
        """RGB uint8 of ``box`` (x0, y0, x1, y1; None: the whole frame), converted alone."""
        if box is None:
            return self.to_rgb()
        x0, y0, x1, y1 = box
        ax0, ay0 = x0 & ~1, y0 & ~1
        ax1, ay1 = min(self.width, (x1 + 1) & ~1), min(self.height, (y1 + 1) & ~1)
        y, u, v = self.planes
        part = np.concatenate([y[ay0:ay1, ax0:ax1].ravel(), u[ay0 // 2:ay1 // 2, ax0 // 2:ax1 // 2].ravel(),
                               v[ay0 // 2:ay1 // 2, ax0 // 2:ax1 // 2].ravel()])
        rgb = cv2.cvtColor(part.reshape((ay1 - ay0) * 3 // 2, ax1 - ax0), cv2.COLOR_YUV2RGB_I420)
        return rgb[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0]

    def small_rgb(self, width: int, height: int) -> np.ndarray:
        """The frame at ``width`` x ``height`` in RGB: each plane shrunk (:func:`downscale`),
        then one conversion of the small 4:4:4 image (a fraction of a whole-frame conversion)."""
        # half-size chroma may be below the target size: downscale then upsamples it bilinearly
        return cv2.transform(cv2.merge([downscale(p, width, height) for p in self.planes]), YUV_TO_RGB)

    def paste(self, src: "Planar", rects: list[tuple[slice, slice]]) -> None:
        """Copy ``src``'s pixels of the (even-edged) rectangles ``(rows, cols)`` into this frame."""
        (y, u, v), (sy, su, sv) = self.planes, src.planes
        for rows, cols in rects:
            y[rows, cols] = sy[rows, cols]
            hr, hc = half(rows), half(cols)
            u[hr, hc] = su[hr, hc]
            v[hr, hc] = sv[hr, hc]


def half(s: slice) -> slice:
    """A slice of even edges at full size, on the chroma planes."""
    return slice(s.start // 2, s.stop // 2)


def yuv_correction(corrections: list[np.ndarray]) -> np.ndarray | None:
    """Working-size RGB colour corrections (levels, HxWx3, any grids) as one change of Y, U and V
    (float32 HxWx3, on the finest of their grids; None for none). Summed before upsampling
    (the corrections are smooth), so the fused pass adds one change per plane, not one each."""
    if not corrections:
        return None
    h, w = max((c.shape[:2] for c in corrections), key=lambda s: s[0] * s[1])
    total = np.zeros((h, w, 3), np.float32)
    for c in corrections:
        c = c.astype(np.float32, copy=False)
        total += c if c.shape[:2] == (h, w) else cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.transform(total, RGB_DELTA_TO_YUV)


def planar_ok(width: int, height: int) -> bool:
    return width % 2 == 0 and height % 2 == 0 and width >= 2 and height >= 2


__all__ = ["Planar", "RGB_DELTA_TO_YUV", "YUV_TO_RGB", "Y_TO_GREY", "half", "planar_ok", "yuv_correction"]
