"""Webcam capture, and a file-backed fake camera for tests and benchmarks.

:func:`open_camera` turns the ``--device`` value into a source whose ``read()`` returns the next
RGB uint8 HxWx3 frame (or None when a file-backed source ends):

- ``0``, ``1``, ... or ``/dev/videoN``: a real camera through OpenCV (V4L2 on Linux, the native
  API elsewhere) or, with ``backend="pyav"``, FFmpeg's v4l2/avfoundation/dshow input;
- a video file (``clip.mp4``) or ``file:clip.mp4``: :class:`FileCamera`, which plays the file at
  its own frame rate like a camera would (frames are produced on time whether or not anybody
  keeps up), so the live loop sees real frames and real timing without hardware. Asked for
  another size (``--width``/``--height``), it scales to cover and centre-crops like a webcam
  would, never stretching (see :func:`cover_crop`).

Cameras buffer frames in the driver; every buffered frame is latency. OpenCV's buffer is set to
one frame where the backend allows. OpenCV's own log lines (``[ WARN:0@0.2] global
cap_v4l.cpp ... can't open camera by index``) are silenced around every capture call: a missing
or busy camera is reported once, as a :class:`CameraError`. Nothing here knows about mattes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)


class CameraError(InputError):
    """The camera is missing, busy, or does not deliver frames."""


_CV_LOG = getattr(getattr(cv2, "utils", None), "logging", None)
_cv_log_lock = threading.Lock()
_cv_quiet_depth = 0
_cv_saved_level = None


@contextlib.contextmanager
def opencv_silenced():
    """Silence OpenCV's logger (process-wide) inside the block, then restore its level.

    OpenCV's videoio backends report a missing device as ``[ WARN ]`` lines on stderr before
    ``VideoCapture`` returns; the caller turns that into one clear error instead. Nested and
    concurrent blocks are counted, so the level comes back only when the last one ends.
    (``OPENCV_LOG_LEVEL`` would work too, but only if set before cv2 is first imported.)
    """
    global _cv_quiet_depth, _cv_saved_level
    if _CV_LOG is None:  # pragma: no cover - every supported OpenCV build has cv2.utils.logging
        yield
        return
    with _cv_log_lock:
        _cv_quiet_depth += 1
        if _cv_quiet_depth == 1:
            _cv_saved_level = _CV_LOG.setLogLevel(_CV_LOG.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        with _cv_log_lock:
            _cv_quiet_depth -= 1
            if _cv_quiet_depth == 0 and _cv_saved_level is not None:
                _CV_LOG.setLogLevel(_cv_saved_level)
                _cv_saved_level = None


def cover_crop(src_size: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centred ``(x, y, w, h)`` part of a ``src_size`` frame that has the aspect of ``size``.

    Scaling that part to ``size`` is a *cover* resize: the frame is filled, the aspect is kept,
    and what sticks out is cropped. This is what a webcam does when asked for another aspect
    (a 4:3 sensor delivering 1280x720 crops top and bottom); stretching would make faces wide or
    thin, and padding would put black bars into the scene that the matte would then treat as
    part of the room. Conferencing apps expect a full frame, so the fake camera crops too.
    """
    w, h = src_size
    tw, th = size
    scale = max(tw / w, th / h)
    cw, ch = min(w, max(1, round(tw / scale))), min(h, max(1, round(th / scale)))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def _list_video_devices() -> list[str]:
    if not sys.platform.startswith("linux"):
        return []
    return sorted(str(p) for p in Path("/dev").glob("video*"))


def _missing_camera_message(name: str) -> str:
    found = _list_video_devices()
    if sys.platform.startswith("linux"):
        hint = f"cameras here: {', '.join(found)}" if found else "no /dev/video* device exists"
        return f"camera {name} not found or busy ({hint}); pick one with --device"
    return f"camera {name} not found or busy; pick another with --device"


class FileCamera:
    """A fake camera that plays a video file in real time (or as fast as asked).

    ``fps`` overrides the file's rate; ``realtime=False`` returns frames as fast as they decode
    (deterministic tests); ``loop=True`` restarts at the end like a never-ending camera;
    ``limit`` stops after that many frames. In real time, a consumer that falls behind does not
    slow the camera down: frames that were due while nobody called ``read()`` are skipped, as a
    real camera's driver would overwrite them.
    """

    def __init__(self, path: str | Path, *, fps: float | None = None, realtime: bool = True,
                 loop: bool = False, limit: int | None = None, size: tuple[int, int] | None = None):
        from .video import VideoReader

        self.path = Path(path)
        self._reader_cls = VideoReader
        reader = VideoReader(self.path)  # raises InputError for a missing/corrupt file
        self.fps = float(fps or reader.rate or 30.0)
        if not 0 < self.fps <= 1000:
            raise CameraError(f"camera fps must be in (0, 1000], got {fps}")
        self.realtime = realtime
        self.loop = loop
        self.limit = limit
        self.size_override = size
        self._reader = reader
        self._it = iter(reader)
        self._t0: float | None = None
        self._index = 0          # frames delivered
        self._decoded = 0        # frames decoded from the file since the last rewind
        self.skipped = 0         # frames that were due while the consumer was busy
        self.width, self.height = reader.size

    @property
    def size(self) -> tuple[int, int]:
        return self.size_override or (self.width, self.height)

    def _next_image(self) -> np.ndarray | None:
        try:
            img = next(self._it).image
        except StopIteration:
            if not self.loop or self._decoded == 0:
                return None
            self._reader = self._reader_cls(self.path)
            self._it = iter(self._reader)
            self._decoded = 0
            return self._next_image()
        self._decoded += 1
        if self.size_override and (img.shape[1], img.shape[0]) != self.size_override:
            img = self._fit(img)
        return img

    def _fit(self, img: np.ndarray) -> np.ndarray:
        """Cover-resize to ``size_override``: keep the aspect, crop the overflow (see :func:`cover_crop`)."""
        tw, th = self.size_override
        x, y, w, h = cover_crop((img.shape[1], img.shape[0]), (tw, th))
        part = img[y:y + h, x:x + w]
        interp = cv2.INTER_AREA if w > tw else cv2.INTER_LINEAR
        return cv2.resize(part, (tw, th), interpolation=interp)

    def read(self) -> np.ndarray | None:
        if self.limit is not None and self._index >= self.limit:
            return None
        if not self.realtime:
            img = self._next_image()
            self._index += img is not None
            return img
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        # which frame is "on the sensor" now; frames the consumer missed are skipped
        due = int((now - self._t0) * self.fps)
        target = max(self._index, due)
        while self._index < target:
            if self._next_image() is None:
                return None
            self._index += 1
            self.skipped += 1
            if self.limit is not None and self._index >= self.limit:
                return None
        t_frame = self._t0 + self._index / self.fps
        if t_frame > now:
            time.sleep(t_frame - now)
        img = self._next_image()
        self._index += img is not None
        return img

    def close(self) -> None:
        self._reader.close()

    def describe(self) -> str:
        w, h = self.size
        return f"fake camera {self.path.name} {w}x{h}@{self.fps:g}"


class OpenCVCamera:
    """A real camera through OpenCV's VideoCapture (V4L2 on Linux)."""

    def __init__(self, device: int | str, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, fourcc: str | None = "MJPG"):
        self.name = str(device)
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        if isinstance(device, str) and not os.path.exists(device):
            raise CameraError(_missing_camera_message(device))
        with opencv_silenced():
            self.cap = cv2.VideoCapture(device, api)
            if not self.cap.isOpened():
                self.cap.release()
                raise CameraError(_missing_camera_message(self.name))
            # a compressed format is needed for 720p/1080p at 30 fps over USB 2
            if fourcc and (width or 0) * (height or 0) > 640 * 480:
                self.cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc))
            if width:
                self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
            if height:
                self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
            if fps:
                self.cap.set(cv2.CAP_PROP_FPS, float(fps))
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            ok, first = self.cap.read()
            if not ok or first is None:
                self.cap.release()
                raise CameraError(f"camera {self.name} opened but delivers no frames (in use by another app?)")
            self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or fps or 30.0)
        self._first: np.ndarray | None = first
        self.height, self.width = first.shape[:2]
        if (width and width != self.width) or (height and height != self.height):
            log.warning("camera %s gives %dx%d, not the %sx%s asked for", self.name, self.width, self.height,
                        width, height)
        self._failures = 0

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def read(self) -> np.ndarray | None:
        if self._first is not None:
            bgr, self._first = self._first, None
        else:
            while True:  # a few failed grabs happen (USB hiccups); many in a row mean it is gone
                with opencv_silenced():
                    ok, bgr = self.cap.read()
                if ok and bgr is not None:
                    self._failures = 0
                    break
                self._failures += 1
                if self._failures > 30:
                    raise CameraError(f"camera {self.name} stopped delivering frames (unplugged?)")
                time.sleep(0.01)
        if bgr.ndim == 2:
            return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        with opencv_silenced():
            self.cap.release()

    def describe(self) -> str:
        return f"camera {self.name} {self.width}x{self.height}@{self.fps:g}"


class PyAVCamera:
    """A real camera through FFmpeg's capture input (v4l2 on Linux, avfoundation, dshow)."""

    def __init__(self, device: int | str, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None, input_format: str | None = None):
        import av

        if sys.platform.startswith("linux"):
            fmt = "v4l2"
            url = f"/dev/video{device}" if str(device).isdigit() else str(device)
            if not os.path.exists(url):
                raise CameraError(_missing_camera_message(url))
        elif sys.platform == "darwin":  # pragma: no cover - platform specific
            fmt, url = "avfoundation", str(device)
        else:  # pragma: no cover - platform specific
            fmt, url = "dshow", f"video={device}"
        options = {}
        if width and height:
            options["video_size"] = f"{int(width)}x{int(height)}"
        if fps:
            options["framerate"] = str(Fraction(fps).limit_denominator(1001))
        if input_format:
            options["input_format"] = input_format
        self.name = url
        try:
            self.container = av.open(url, format=fmt, options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise CameraError(f"cannot open camera {url}: {str(exc).splitlines()[0][:160]}") from None
        self.stream = self.container.streams.video[0]
        self._frames = self.container.decode(self.stream)
        cc = self.stream.codec_context
        self.width, self.height = int(cc.width), int(cc.height)
        self.fps = float(self.stream.average_rate or fps or 30)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def read(self) -> np.ndarray | None:
        import av

        try:
            return next(self._frames).to_ndarray(format="rgb24")
        except StopIteration:
            return None
        except av.error.FFmpegError as exc:
            raise CameraError(f"camera {self.name} failed: {str(exc).splitlines()[0][:160]}") from None

    def close(self) -> None:
        self.container.close()

    def describe(self) -> str:
        return f"camera {self.name} {self.width}x{self.height}@{self.fps:g} (PyAV)"


def open_camera(device: str | int = 0, *, width: int | None = None, height: int | None = None,
                fps: float | None = None, backend: str = "opencv", realtime: bool = True,
                loop: bool = False, limit: int | None = None):
    """Open a camera (index, device path) or a video file as a fake camera (see module doc)."""
    if width is not None and width < 1 or height is not None and height < 1:
        raise CameraError("camera width and height must be positive")
    if fps is not None and not 0 < fps <= 1000:
        raise CameraError(f"camera fps must be in (0, 1000], got {fps:g}")
    text = str(device).strip()
    if text.startswith("file:"):
        text = text[5:]
        is_file = True
    else:
        is_file = not text.isdigit() and not text.startswith("/dev/") and (
            Path(text).suffix.lower() in {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".y4m", ".gif"}
            or Path(text).is_file())
    if is_file:
        size = (int(width), int(height)) if width and height else None
        return FileCamera(text, fps=fps, realtime=realtime, loop=loop, limit=limit, size=size)
    if backend == "pyav":
        return PyAVCamera(text, width=width, height=height, fps=fps)
    if backend != "opencv":
        raise CameraError(f"unknown camera backend {backend!r}: use opencv or pyav")
    return OpenCVCamera(int(text) if text.isdigit() else text, width=width, height=height, fps=fps)


# -- helpers for fake cameras in browsers -----------------------------------------------------------
def write_y4m(path: str | Path, frames, fps: int = 30) -> Path:
    """Write RGB frames as a YUV4MPEG2 file (header, then ``FRAME`` + I420 planes per frame).

    Chromium's ``--use-file-for-fake-video-capture`` plays such a file as the webcam, which is
    how the browser test gives a real browser a real clip of a person.
    """
    path = Path(path)
    it = iter(frames)
    first = next(it)
    h, w = first.shape[:2]
    w2, h2 = w - w % 2, h - h % 2
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w2} H{h2} F{int(fps)}:1 Ip A1:1 C420jpeg\n".encode())
        for img in _chain(first, it):
            img = np.ascontiguousarray(img[:h2, :w2])
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(img, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def _chain(first, rest):
    yield first
    yield from rest
