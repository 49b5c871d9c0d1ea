"""Sinks for live frames other than the virtual camera: a list (tests), a recording, several at once.

Every sink has ``write(image, frame)`` and ``close()``. Exists apart from
:mod:`backdrop.io.virtualcam` so that recording and fan-out need neither pyvirtualcam nor a
window; the preview window is in :mod:`backdrop.io.preview`. Nothing here knows about mattes.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .yuv import even_size


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

        from .video_write import VideoWriter

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
