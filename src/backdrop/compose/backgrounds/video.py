"""A looping background video; output frame ``i`` shows background frame ``i mod N``.

Frames are decoded as needed (streamed, never the whole video in memory) and the reader is
reopened at the end of the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import BackdropError, BackgroundError
from .base import Background, BackgroundKind, cover_resize
from .files import VIDEO_INPUT_SUFFIXES, existing, file_param


class VideoBackground(Background):
    def __init__(self, path: Path):
        from ...io.video import VideoReader

        self.path = Path(path)
        self._open = lambda: iter(VideoReader(self.path))
        self._it = self._open()
        self._last_index = -1
        self._current: np.ndarray | None = None
        self._frames_seen = 0
        if self._next() is None:
            raise BackgroundError(f"background video has no frames: {self.path}")

    def _next(self) -> np.ndarray | None:
        try:
            self._current = next(self._it).image
            self._frames_seen += 1
            return self._current
        except StopIteration:
            return None

    def render(self, index, frame, alpha, working=None):
        while self._last_index < index:
            if self._last_index >= 0 and self._next() is None:
                self._it = self._open()
                self._next()
            self._last_index += 1
        h, w = frame.shape[:2]
        return cover_resize(self._current, w, h)

    def describe(self):
        return self.path.name


def open_video(path: Path) -> VideoBackground:
    try:
        return VideoBackground(existing(path))
    except BackgroundError:
        raise
    except BackdropError as exc:
        raise BackgroundError(f"background video unusable: {exc}") from None


KIND = BackgroundKind(
    name="video", help="VIDEO", parse=lambda t: file_param(t, VIDEO_INPUT_SUFFIXES),
    format=lambda p: str(p["path"]), build=lambda p: open_video(p["path"]), files=lambda p: [p["path"]],
)
