"""Where live frames go: a virtual camera, a recording, a preview window, or a list (tests).

:class:`VirtualCamSink` feeds ``pyvirtualcam`` (v4l2loopback on Linux, the OBS virtual camera on
Windows/macOS) so Zoom, Meet, Teams and OBS see the composite as a camera. Frames are converted
here to the pixel format the device should present: YUYV (4:2:2, what most conferencing apps
expect from a webcam) or I420, BT.601 limited range as webcams deliver.

On Linux the sink can tell whether anybody reads the device (another process holds it open,
found through ``/proc``); the live loop uses that to pause inference while nobody watches.
Other platforms do not tell, and the loop never pauses there.

Every sink has ``write(image, frame)`` and ``close()``; nothing here knows about mattes.

This module holds the virtual camera itself and gathers the other names, whose code lives by
concern in :mod:`.yuv` (pixel formats), :mod:`.readers` (who reads the device), :mod:`.sinks`
(test list, recording, several sinks) and :mod:`.preview` (window), so that each stays small and
importers of ``backdrop.io.virtualcam`` need not change.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import BackdropError, install_hint
from .preview import PreviewSink
from .readers import ReaderWatch, device_readers
from .sinks import FakeSink, FileSink, MultiSink
from .yuv import even_size, rgb_to_i420, rgb_to_yuyv

log = logging.getLogger(__name__)

__all__ = [
    "MODPROBE", "PIXEL_FORMATS", "FakeSink", "FileSink", "MultiSink", "PreviewSink", "ReaderWatch",
    "VirtualCamSink", "VirtualCameraError", "check_virtual_camera", "device_readers", "even_size",
    "loopback_devices", "missing_device_message", "rgb_to_i420", "rgb_to_yuyv",
]

MODPROBE = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Backdrop"
PIXEL_FORMATS = ("yuyv", "i420", "rgb")


class VirtualCameraError(BackdropError):
    """No virtual camera device, or pyvirtualcam is not installed."""


# -- virtual camera -----------------------------------------------------------------------------------
def loopback_devices(sys_root: str = "/sys/devices/virtual/video4linux") -> list[str]:
    """``/dev/videoN`` of every v4l2loopback device (they live under /sys/devices/virtual)."""
    root = Path(sys_root)
    if not root.is_dir():
        return []
    return sorted(f"/dev/{p.name}" for p in root.iterdir() if p.name.startswith("video"))


def missing_device_message(device: str | None = None) -> str:
    if sys.platform.startswith("linux"):
        where = f"{device} is not a v4l2loopback device" if device else "no v4l2loopback device found"
        return f"{where}: load the driver with `{MODPROBE}`"
    return ("no virtual camera found: install OBS Studio and start its virtual camera once "
            "(Windows/macOS), then try again")


def check_virtual_camera(device: str | None = None) -> None:
    """Fail early, before the webcam turns on, when no virtual camera can work."""
    try:
        import pyvirtualcam  # noqa: F401
    except ImportError:
        raise VirtualCameraError(f"the virtual camera needs pyvirtualcam: {install_hint('live')}") from None
    if sys.platform.startswith("linux"):
        devices = loopback_devices()
        if not devices or (device is not None and device not in devices):
            raise VirtualCameraError(missing_device_message(device))


class VirtualCamSink:
    """Send frames to a virtual camera through pyvirtualcam.

    Opened at the first frame, because the frame size is only known then (a camera may not give
    the size asked for). ``pixel_format`` is ``yuyv`` (default), ``i420`` or ``rgb``.
    """

    def __init__(self, fps: float = 30.0, *, device: str | None = None, pixel_format: str = "yuyv",
                 backend: str | None = None, watch_readers: bool = True):
        if pixel_format not in PIXEL_FORMATS:
            raise VirtualCameraError(f"unknown pixel format {pixel_format!r}: use yuyv, i420 or rgb")
        self.fps = float(fps)
        self.device = device
        self.pixel_format = pixel_format
        self.backend = backend
        self.watch_readers = watch_readers
        self.cam = None
        self.watch: ReaderWatch | None = None
        self.size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise VirtualCameraError(f"the virtual camera needs pyvirtualcam: {install_hint('live')}") from None
        fmt = {"yuyv": pyvirtualcam.PixelFormat.YUYV, "i420": pyvirtualcam.PixelFormat.I420,
               "rgb": pyvirtualcam.PixelFormat.RGB}[self.pixel_format]
        try:
            self.cam = pyvirtualcam.Camera(width, height, self.fps, fmt=fmt, device=self.device,
                                           backend=self.backend)
        except (RuntimeError, ValueError, OSError) as exc:
            detail = str(exc).strip().splitlines()
            if sys.platform.startswith("linux") and (not loopback_devices() or "loopback" in str(exc).lower()):
                raise VirtualCameraError(missing_device_message(self.device)) from None
            raise VirtualCameraError(f"cannot open the virtual camera: {detail[-1] if detail else exc}") from None
        self.size = (width, height)
        log.info("virtual camera %s %dx%d %s", self.cam.device, width, height, self.pixel_format.upper())
        if self.watch_readers and sys.platform.startswith("linux"):
            self.watch = ReaderWatch(self.cam.device).start()

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        image = even_size(image) if self.pixel_format != "rgb" else image
        h, w = image.shape[:2]
        if self.cam is None:
            self._open(w, h)
        elif (w, h) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        if self.pixel_format == "yuyv":
            self.cam.send(rgb_to_yuyv(image))
        elif self.pixel_format == "i420":
            self.cam.send(rgb_to_i420(image))
        else:
            self.cam.send(np.ascontiguousarray(image))

    @property
    def active(self) -> bool | None:
        """Whether anybody reads the device (None: the platform does not tell)."""
        return None if self.watch is None else self.watch.active

    def describe(self) -> str:
        return f"virtual camera {self.device or '(first free)'} ({self.pixel_format.upper()})"

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.cam is not None:
            self.cam.close()
            self.cam = None
