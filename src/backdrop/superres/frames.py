"""Upscaling whole frames x2: RGB uint8 HxWx3 (the API) or I420 planes (file jobs).

Only luma goes through the network (:class:`~.network.LumaNet`); colour is upscaled bilinearly,
as ESPCN does: the eye resolves luma detail, the codec already halved the chroma. The two
frame kinds combine the network's luma residual with the bilinear picture differently but to
the same effect:

- RGB (the API, the camera, the server): the bilinear 2x of the RGB frame, plus the residual
  added equally to R, G and B, scaled by 255/219 (adding ``d`` to all three channels raises
  BT.601 limited-range Y by ``d * 219/255`` and leaves U and V alone). The page does the same.
- I420 (``backdrop upscale`` on a video and ``--upscale`` of file jobs): the Y plane is the
  bilinear 2x plus the residual, U and V the bilinear 2x of theirs; no colour conversion at all.

Any size is taken (odd ones too: the network pads by edge replication and the I420 path pads
to even); a result larger than 8K UHD (7680x4320 pixels' worth) is refused in one line.
"""

from __future__ import annotations

import threading

import cv2
import numpy as np

from ..errors import InputError, OptionError
from ..planar import Planar
from .network import DEFAULT_BACKEND, LumaNet, SRWeights

TRAINED_SCALES = (2,)
MAX_OUTPUT_PIXELS = 7680 * 4320
RGB_TO_Y = np.array([[65.481, 128.553, 24.966, 16.0 * 255.0]], np.float32) / 255.0
"""BT.601 limited-range luma of RGB levels, as one cv2.transform row (the codec's own Y)."""
Y_TO_RGB_STEP = np.float32(255.0 / 219.0)


def check_scale(scale: int, option: str = "scale") -> int:
    """``scale`` if a network for it ships, else an :class:`OptionError` naming ``option``."""
    if scale not in TRAINED_SCALES:
        raise OptionError(f"{{option}} {scale}: only x{', x'.join(map(str, TRAINED_SCALES))} is trained "
                          "(the shipped network is sr-x2)", option=option)
    return int(scale)


def check_size(width: int, height: int, scale: int = 2) -> None:
    """One line for a frame whose upscale would pass 8K (7680x4320) or that has no pixels."""
    if width < 1 or height < 1:
        raise InputError(f"cannot upscale an empty {width}x{height} picture")
    if width * height * scale * scale > MAX_OUTPUT_PIXELS:
        raise InputError(f"{width}x{height} is already too large to upscale x{scale}: the result would be "
                         f"{width * scale}x{height * scale}, past 8K (7680x4320)")


class Upscaler:
    """x2 super-resolution of frames: ``up(rgb)`` -> RGB uint8 (2H, 2W, 3); ``up(planar)`` ->
    :class:`Planar` at twice the size. One instance is not meant for two threads at once; the
    ``lock`` serialises callers that share one (the default instance of :func:`upscale`)."""

    def __init__(self, scale: int = 2, *, backend: str = DEFAULT_BACKEND, threads: int = 2,
                 weights: SRWeights | None = None):
        self.scale = check_scale(scale)
        self.net = LumaNet(weights, backend=backend, threads=threads)
        self.lock = threading.Lock()

    def __call__(self, frame):
        """A finished frame of any kind a job makes: I420 planes, RGB, or RGBA (colour by the
        network, alpha bilinear). A matte (grey) is refused: it is no picture to sharpen."""
        if isinstance(frame, Planar):
            return self.planar(frame)
        if isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 4:
            h, w = frame.shape[:2]
            colour = self.rgb(np.ascontiguousarray(frame[..., :3]))
            alpha = cv2.resize(frame[..., 3], (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)
            return np.dstack([colour, alpha])
        if isinstance(frame, np.ndarray) and frame.ndim == 2:
            raise InputError("upscale makes pictures sharper; the matte output (--background matte) is not one")
        return self.rgb(frame)

    def rgb(self, frame: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 in, RGB uint8 2Hx2Wx3 out."""
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise InputError(f"upscale takes an RGB uint8 HxWx3 frame, not {got}")
        h, w = frame.shape[:2]
        check_size(w, h, self.scale)
        frame = np.ascontiguousarray(frame)
        y = cv2.transform(frame, RGB_TO_Y)
        step = self.net.residual(y) * Y_TO_RGB_STEP
        base = cv2.resize(frame, (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)
        return cv2.add(base, cv2.merge([step, step, step]), dtype=cv2.CV_8U)

    def luma(self, y: np.ndarray) -> np.ndarray:
        """uint8 Y plane (H, W) -> its x2, uint8 (2H, 2W): bilinear plus the network's residual."""
        h, w = y.shape
        base = cv2.resize(y.astype(np.float32), (w * 2, h * 2), interpolation=cv2.INTER_LINEAR)
        return cv2.add(base, self.net.residual(y), dtype=cv2.CV_8U)

    def planar(self, frame: Planar) -> Planar:
        """I420 in, I420 at twice the size out (luma by the network, chroma bilinear)."""
        w, h = frame.size
        check_size(w, h, self.scale)
        out = Planar.blank(w * 2, h * 2)
        y, u, v = out.planes
        y[:] = self.luma(frame.y)
        for k, plane in ((1, u), (2, v)):
            cv2.resize(frame.chroma(k), (w, h), dst=plane, interpolation=cv2.INTER_LINEAR)
        return out


_DEFAULT: list[Upscaler] = []
_DEFAULT_LOCK = threading.Lock()


def default_upscaler() -> Upscaler:
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(Upscaler())
        return _DEFAULT[0]


def upscale(frame: np.ndarray, scale: int = 2) -> np.ndarray:
    """Super-resolve an RGB uint8 HxWx3 frame x2: RGB uint8 (2H, 2W, 3) out.

    Our own small network (``sr-x2``, trained on call-degraded video, shipped in the package)
    on luma, bilinear on colour. Any size up to 3840x2160 in (8K out); ``scale`` must be 2."""
    check_scale(scale)
    up = default_upscaler()
    with up.lock:
        return up.rgb(frame)


__all__ = ["MAX_OUTPUT_PIXELS", "TRAINED_SCALES", "Upscaler", "check_scale", "check_size", "default_upscaler",
           "upscale"]
