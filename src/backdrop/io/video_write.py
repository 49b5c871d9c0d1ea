"""Writing video files with PyAV (FFmpeg): :class:`VideoWriter`.

Encodes H.264 (CRF), VP9, or the alpha formats ProRes 4444 (.mov) and VP9 with alpha (.webm)
(codec choice in :mod:`backdrop.io.formats`), reuses the caller's timestamps (same frame count,
same timing), and hands the source's audio to :mod:`backdrop.io.audio`, interleaved by time.
Exists apart from reading so each side stays small; nothing here knows about mattes.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import OutputError
from ..planar import Planar
from .audio import _AudioCopier
from .ffmpeg import _is_disk_full, _short
from .formats import check_video_output_suffix, choose_video_codec, validate_encoder_options


class VideoWriter:
    """Encode frames to ``path`` (which should be a temp path: see :mod:`backdrop.io.atomic`).

    ``pixel_format`` is ``rgb`` (HxWx3), ``rgba`` (HxWx4) or ``gray`` (HxW). ``audio_from`` is a file
    whose audio streams are copied into the output, interleaved with the video by time.
    """

    def __init__(self, path: Path, *, width: int, height: int, rate: Fraction, time_base: Fraction,
                 pixel_format: str = "rgb", crf: int = 20, preset: str = "veryfast",
                 audio_from: Path | None = None, suffix: str | None = None, threads: int | None = None):
        self.path = Path(path)
        suffix = (suffix or self.path.suffix).lower()
        check_video_output_suffix(suffix, self.path.name)
        fmt = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}[suffix]
        validate_encoder_options(crf, preset)
        codec, pix_fmt, options = choose_video_codec(suffix, pixel_format, width, height)
        if codec == "libx264":
            options = {"crf": str(crf), "preset": preset}
        elif codec == "libvpx-vp9":
            options = {**options, "crf": str(min(63, crf + 12)), "b": "0"}
        try:
            self.container = av.open(str(self.path), mode="w", format=fmt)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create {self.path}: {_short(exc)}") from None
        self.pixel_format = pixel_format
        self.time_base = Fraction(time_base)
        self.stream = self.container.add_stream(codec, rate=Fraction(rate).limit_denominator(100000))
        self.stream.width, self.stream.height = int(width), int(height)
        self.stream.pix_fmt = pix_fmt
        self.stream.codec_context.time_base = self.time_base
        self.stream.time_base = self.time_base
        if threads:
            self.stream.codec_context.thread_count = int(threads)
        self.stream.options = options
        self.frames_written = 0
        self._last_pts: int | None = None
        self._frame_step = max(1, round(1 / (float(rate) * float(self.time_base))))
        self._audio = _AudioCopier(audio_from, self.container, suffix) if audio_from else None

    def write(self, image: np.ndarray | Planar, pts: int | None = None) -> None:
        """Encode one image of the writer's pixel format (or, for ``rgb``, a :class:`Planar`, which goes
        to the encoder without a colour conversion)."""
        if isinstance(image, Planar):
            vf = av.VideoFrame.from_ndarray(image.data, format="yuv420p")
        elif self.pixel_format == "rgba":
            vf = av.VideoFrame.from_ndarray(image, format="rgba")
        elif self.pixel_format == "gray":
            vf = av.VideoFrame.from_ndarray(image, format="gray")
        else:
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + self._frame_step
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        vf.pts = int(pts)
        vf.time_base = self.time_base
        self._last_pts = vf.pts
        self._mux(self.stream.encode(vf))
        self.frames_written += 1
        if self._audio:
            self._audio.copy_until(float(vf.pts * self.time_base) + 1.0)

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except OSError as exc:
            if _is_disk_full(exc):
                raise OutputError(f"no space left on the device while writing {self.path.name}") from None
            raise OutputError(f"cannot write {self.path.name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        try:
            self._mux(self.stream.encode(None))
            if self._audio:
                self._audio.copy_until(float("inf"))
        finally:
            self.abort()

    def abort(self) -> None:
        if self._audio:
            self._audio.close()
            self._audio = None
        if self.container is not None:
            try:
                self.container.close()
            except (av.error.FFmpegError, OSError) as exc:
                self.container = None
                if _is_disk_full(exc):
                    raise OutputError(f"no space left on the device while writing {self.path.name}") from None
                raise OutputError(f"cannot finish {self.path.name}: {_short(exc)}") from None
            self.container = None

    def discard(self) -> None:
        """Abort because the job already failed: the output is thrown away, so an error while
        closing it would only hide the first one and is not reported."""
        try:
            self.abort()
        except OutputError:
            pass
