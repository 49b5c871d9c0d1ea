"""Sinks for live frames other than the virtual camera: a list (tests), a recording, several at once.

Every sink has ``write(image, frame)`` and ``close()``. Exists apart from
:mod:`backdrop.io.virtualcam` so that recording and fan-out need neither pyvirtualcam nor a
window; the preview window is in :mod:`backdrop.io.preview`. Nothing here knows about mattes.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import OutputError
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
        from .formats import check_video_output_suffix

        self.path = check_output_path(Path(path))
        # here, naming the user's file: left to the writer, the error named the hidden temp file
        check_video_output_suffix(self.path.suffix, self.path.name)
        self.fps = fps
        self.crf = crf
        self.writer = None
        self.tmp: Path | None = None
        self._fd = -1  # the temp file's fd, open (and locked) while recording
        self._t0: float | None = None
        self.frames = 0

    def write(self, image: np.ndarray, frame: Any = None) -> None:
        from .atomic import check_written, open_temp
        from .video_write import VideoWriter

        image = even_size(image)
        if self.writer is None:
            # atomic.open_temp: the recording gets normal permissions (0666 less the umask, as
            # every other output; mkstemp's 0600 made it unreadable to anyone else) and is
            # locked while written, so a stale-temp sweep of another run leaves it alone
            self.tmp, self._fd = open_temp(self.path)
            h, w = image.shape[:2]
            try:
                self.writer = VideoWriter(self.tmp, width=w, height=h,
                                          rate=Fraction(self.fps).limit_denominator(1001),
                                          time_base=Fraction(1, 1000), crf=self.crf, preset="veryfast",
                                          suffix=self.path.suffix)
            except BaseException:
                self._drop_temp()
                raise
            self.size = (w, h)
        elif (image.shape[1], image.shape[0]) != self.size:
            image = cv2.resize(image, self.size, interpolation=cv2.INTER_LINEAR)
        if self.frames % 30 == 0:  # a deleted output folder: stop now, not at the end of the recording
            check_written(self.tmp)
        t = getattr(frame, "t_capture", None) if frame is not None else None
        t = time.perf_counter() if t is None else t
        if self._t0 is None:
            self._t0 = t
        try:
            self.writer.write(image, int(round((t - self._t0) * 1000)))
        except OutputError as exc:  # name what the user asked for, and say when the folder went
            check_written(self.tmp)
            raise OutputError(str(exc).replace(str(self.tmp), str(self.path))
                              .replace(self.tmp.name, self.path.name)) from None
        self.frames += 1

    def describe(self) -> str:
        return f"recording {self.path}"

    def close(self) -> None:
        from .atomic import commit_temp

        if self.writer is None:
            return
        try:
            self.writer.close()
            commit_temp(self.tmp, self.path)
        except BaseException:
            self.tmp.unlink(missing_ok=True)
            raise
        finally:
            self.writer = None
            self._drop_temp(unlink=False)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        self._drop_temp()

    def _drop_temp(self, unlink: bool = True) -> None:
        from .atomic import close_temp

        if self.tmp is not None:
            if unlink:
                self.tmp.unlink(missing_ok=True)
            if self._fd >= 0:
                close_temp(self.tmp, self._fd)
                self._fd = -1


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
