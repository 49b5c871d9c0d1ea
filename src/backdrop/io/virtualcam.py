"""Where live frames go: a virtual camera, a recording, a preview window, or a list (tests).

:class:`VirtualCamSink` feeds ``pyvirtualcam`` (v4l2loopback on Linux, the OBS virtual camera on
Windows/macOS) so Zoom, Meet, Teams and OBS see the composite as a camera. Frames are converted
here to the pixel format the device should present: YUYV (4:2:2, what most conferencing apps
expect from a webcam) or I420, BT.601 limited range as webcams deliver.

On Linux the sink can tell whether anybody reads the device (another process holds it open,
found through ``/proc``); the live loop uses that to pause inference while nobody watches.
Other platforms do not tell, and the loop never pauses there.

Every sink has ``write(image, frame)`` and ``close()``; nothing here knows about mattes.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import BackdropError, OutputError, install_hint
from .threaded import Poller

log = logging.getLogger(__name__)

MODPROBE = "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Backdrop"
PIXEL_FORMATS = ("yuyv", "i420", "rgb")


class VirtualCameraError(BackdropError):
    """No virtual camera device, or pyvirtualcam is not installed."""


# -- pixel formats ------------------------------------------------------------------------------------
def rgb_to_i420(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 (even W and H) -> I420 planes as a flat uint8 array of W*H*3/2 bytes."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)


def rgb_to_yuyv(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 HxWx3 (even W) -> packed YUYV 4:2:2 (Y0 U Y1 V), flat, W*H*2 bytes.

    Built from the I420 conversion (same BT.601 limited-range matrix) with each chroma row used
    for two lines, so the two formats show identical colours.
    """
    h, w = rgb.shape[:2]
    yuv = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
    y = yuv[:h]
    u = yuv[h:h + h // 4].reshape(h // 2, w // 2)
    v = yuv[h + h // 4:].reshape(h // 2, w // 2)
    out = np.empty((h, w // 2, 4), np.uint8)
    out[..., 0] = y[:, 0::2]
    out[..., 2] = y[:, 1::2]
    out[..., 1] = np.repeat(u, 2, axis=0)
    out[..., 3] = np.repeat(v, 2, axis=0)
    return out.reshape(-1)


def even_size(image: np.ndarray) -> np.ndarray:
    """Crop one pixel row/column if needed: 4:2:0 and 4:2:2 need even sizes."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        return np.ascontiguousarray(image[: h - h % 2, : w - w % 2])
    return image


# -- readers of a device (Linux) ---------------------------------------------------------------------
def device_readers(device: str | os.PathLike, proc: str | os.PathLike = "/proc") -> int | None:
    """How many *other* processes hold ``device`` open, or None when the platform cannot tell.

    Only processes whose ``/proc/PID/fd`` this user may read are seen (the conferencing app runs
    as the same user, so it is). Used to pause inference while nobody watches.
    """
    if not sys.platform.startswith("linux"):
        return None
    proc = Path(proc)
    if not proc.is_dir():
        return None
    try:
        target = os.stat(device)
    except OSError:
        return None
    me = os.getpid()
    count = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        fd_dir = entry / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if st.st_ino == target.st_ino and st.st_dev == target.st_dev and st.st_rdev == target.st_rdev:
                count += 1
                break
    return count


class ReaderWatch(Poller):
    """Polls :func:`device_readers` in a background thread (a /proc scan costs milliseconds,
    too much for every frame). ``active`` is True, False, or None when unknown."""

    name = "backdrop-readers"

    def __init__(self, device: str, interval: float = 1.0):
        self.device = device
        self.active: bool | None = None
        super().__init__(interval)

    def poll(self) -> None:
        n = device_readers(self.device)
        was = self.active
        self.active = None if n is None else n > 0
        if was is not None and was != self.active:
            log.info("virtual camera %s: %s", self.device,
                     "a reader appeared, processing resumed" if self.active else "no reader, inference paused")


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


# -- other sinks ---------------------------------------------------------------------------------------
class FakeSink:
    """Keeps what it is given (tests): ``frames`` (images), ``seqs`` and ``latencies`` (s)."""

    def __init__(self, keep_images: bool = True, delay: float = 0.0):
        self.keep_images = keep_images
        self.delay = delay
        self.frames: list[np.ndarray] = []
        self.seqs: list[int] = []
        self.latencies: list[float] = []
        self.closed = False
        self.active: bool | None = None

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.keep_images:
            self.frames.append(image.copy())
        if frame is not None:
            self.seqs.append(frame.seq)
            self.latencies.append(time.perf_counter() - frame.t_capture)

    def close(self) -> None:
        self.closed = True


class FileSink:
    """Record the live output to a video file, timed by capture time (variable frame rate).

    The recording goes to a temporary file beside the destination and is renamed when closed
    normally, which includes the user stopping the camera with Ctrl-C: stopping *is* how a
    recording ends. ``abort()`` (an error) removes it.
    """

    def __init__(self, path: str | Path, fps: float = 30.0, *, crf: int = 20):
        from .atomic import check_output_path

        self.path = check_output_path(Path(path))
        self.fps = fps
        self.crf = crf
        self.writer = None
        self.tmp: Path | None = None
        self._t0: float | None = None
        self.frames = 0

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        import tempfile

        from .video import VideoWriter

        image = even_size(image)
        if self.writer is None:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent or ".", prefix=f".{self.path.stem}.",
                                       suffix=f".part{self.path.suffix}")
            os.close(fd)
            self.tmp = Path(tmp)
            h, w = image.shape[:2]
            self.writer = VideoWriter(self.tmp, width=w, height=h, rate=Fraction(self.fps).limit_denominator(1001),
                                      time_base=Fraction(1, 1000), crf=self.crf, preset="veryfast",
                                      suffix=self.path.suffix)
            self.size = (w, h)
        elif (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        t = getattr(frame, "t_capture", None) if frame is not None else None
        t = time.perf_counter() if t is None else t
        if self._t0 is None:
            self._t0 = t
        self.writer.write(image, int(round((t - self._t0) * 1000)))
        self.frames += 1

    def describe(self) -> str:
        return f"recording {self.path}"

    def close(self) -> None:
        if self.writer is None:
            return
        try:
            self.writer.close()
            os.replace(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        finally:
            self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


class PreviewSink:
    """Show the output in a window (OpenCV HighGUI) and collect the keys pressed in it.

    The pip wheel ``opencv-python-headless`` has no window support; then this says how to get it
    instead of failing obscurely.
    """

    def __init__(self, title: str = "backdrop", overlay: bool = True):
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("--preview needs a display (DISPLAY is not set)")
        self.title = title
        self.overlay = overlay
        self.text = ""
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise OutputError("--preview needs OpenCV with window support: pip uninstall opencv-python-headless "
                              "&& pip install opencv-python") from None
        self.keys: list[str] = []
        self.closed_by_user = False

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.overlay and self.text:
            cv2.putText(bgr, self.text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(bgr, self.text, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.imshow(self.title, bgr)

    def poll(self) -> list[str]:
        """Keys pressed since the last call; ``"\\x1b"`` also when the window was closed."""
        key = cv2.waitKey(1)
        if key >= 0:
            self.keys.append(chr(key & 0xFF))
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                self.closed_by_user = True
                self.keys.append("\x1b")
        except cv2.error:
            pass
        keys, self.keys = self.keys, []
        return keys

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass

    def describe(self) -> str:
        return "preview window"


class MultiSink:
    """Several sinks at once (a virtual camera and a preview). ``active`` is True when any sink
    that can tell is read, or when a sink that is always watched (a preview, a recording) is there."""

    def __init__(self, sinks: list[Any]):
        self.sinks = sinks

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        for s in self.sinks:
            s.write(image, frame)

    @property
    def active(self) -> bool | None:
        states = [getattr(s, "active", True) if hasattr(s, "active") else True for s in self.sinks]
        if any(st is True for st in states):
            return True
        if any(st is None for st in states):
            return None
        return False

    def close(self) -> None:
        errors = []
        for s in self.sinks:
            try:
                s.close()
            except BaseException as exc:  # close them all, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def abort(self) -> None:
        for s in self.sinks:
            (getattr(s, "abort", None) or s.close)()

    def describe(self) -> str:
        return " + ".join(getattr(s, "describe", lambda: type(s).__name__)() for s in self.sinks)
