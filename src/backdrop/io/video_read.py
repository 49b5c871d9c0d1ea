"""Reading video files with PyAV (FFmpeg): :class:`VideoReader`, :class:`Frame`, :func:`probe`.

Frames stream one at a time as RGB uint8 HxWx3, rotated upright when the file carries a
display-rotation (phone videos), with each frame's own timestamp so variable-frame-rate timing
survives. Damaged packets are concealed and counted rather than failing the read. Exists apart
from writing because most callers (evaluation, backgrounds, benchmarks) only read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ..errors import InputError
from ..planar import Planar, planar_ok
from .ffmpeg import _open_input, _short
from .image import max_pixels

log = logging.getLogger(__name__)

MAX_BAD_PACKETS = 200


@dataclass
class Frame:
    """One decoded frame: ``image`` is RGB uint8 HxWx3, upright; ``pts`` in ``time_base`` units."""

    image: np.ndarray
    pts: int | None
    time_base: Fraction
    index: int

    @property
    def time(self) -> float:
        return float(self.pts * self.time_base) if self.pts is not None else float("nan")


def rotate_upright(img: np.ndarray, rotation: float) -> np.ndarray:
    """Rotate by the display matrix angle (degrees counter-clockwise, as PyAV reports it)."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


def fit_into(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Scale ``img`` to fit ``size`` (w, h) keeping its aspect, centred on black (letterbox).

    For a stream whose picture size changes part-way: every output frame has the first
    frame's size, and nothing is stretched.
    """
    w, h = size
    ih, iw = img.shape[:2]
    s = min(w / iw, h / ih)
    nw, nh = max(1, min(w, round(iw * s))), max(1, min(h, round(ih * s)))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


ONE_DECODER_THREAD_FROM = 8_000_000
"""From this many pixels (4K) the decoder runs on one thread: a file job decodes on its own thread
anyway, and FFmpeg's frame threads each hold a copy of the reference frames. Measured on the
office clip at 3840x2160, two cores: ``backdrop video`` 992-998 MB peak RSS at 15.5-15.9
frames/s against 1027-1041 MB at 12.5-15.1 with the automatic threads; the bare transcode 789 MB
against 856-891 MB at the same 15.3 frames/s."""


class VideoReader:
    """Iterate the frames of a video file. Use as an iterable; the file is closed at the end.

    Frames come as RGB uint8 HxWx3. With ``planar`` (file jobs whose output is RGB), frames that
    decode to limited-range YUV 4:2:0 of an even size, upright, come as the decoder's planes
    (:class:`~backdrop.planar.Planar`), which the pipeline and :class:`VideoWriter` take as they
    are; any other frame is RGB as usual."""

    def __init__(self, path: Path, *, threads: int | None = None, limit: int | None = None,
                 planar: bool = False):
        self.path = Path(path)
        self.planar = planar
        self.limit = limit = limit or max_pixels()
        self.container = _open_input(self.path, limit)
        if not self.container.streams.video:
            kinds = "audio-only" if self.container.streams.audio else "no video stream"
            self.container.close()
            raise InputError(f"input has no video stream ({kinds}): {self.path.name}")
        self.stream = self.container.streams.video[0]
        cc = self.stream.codec_context
        if cc is None:
            self.container.close()
            raise InputError(f"no decoder for the video codec of {self.path.name} (corrupt or unsupported)")
        self.coded_width, self.coded_height = int(cc.width or 0), int(cc.height or 0)
        self.stream.thread_type = "AUTO"
        if not threads and self.coded_width * self.coded_height >= ONE_DECODER_THREAD_FROM:
            threads = 1
        if threads:
            cc.thread_count = int(threads)
        # the decoder refuses pictures over the limit (a size change mid-stream included)
        cc.options = {**(cc.options or {}), "max_pixels": str(limit)}
        if self.coded_width * self.coded_height > limit:
            self.container.close()
            raise InputError(
                f"video {self.path.name} declares {self.coded_width}x{self.coded_height} pixels, over the "
                f"limit of {limit} (set BACKDROP_MAX_PIXELS to raise it)"
            )
        self.time_base: Fraction = self.stream.time_base or Fraction(1, 90000)
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.rate: Fraction = Fraction(rate) if rate else Fraction(30, 1)
        if self.rate <= 0 or self.rate > 100000:  # a damaged header; timestamps still come per frame
            self.rate = Fraction(30, 1)
        # read now: stream attributes are not safe to touch once the container is closed
        self.declared_frames = int(self.stream.frames or 0)
        self.frame_count = self.declared_frames
        #: frames the header's duration implies when it declares no count (MKV, WebM): for the
        #: progress bar and messages only, since at a variable rate it is no count at all
        self.expected_frames = 0
        #: where the container says the video ends (seconds), judged against the last frame's
        #: timestamp when no frame count is declared (:func:`cut_short`)
        self.declared_end = declared_end(self.container, self.stream)
        if not self.frame_count and self.declared_end:
            self.expected_frames = int(round(self.declared_end * float(self.rate)))
            self.frame_count = self.expected_frames
        self.last_time: float | None = None  # the last decoded frame's own timestamp (s)
        self.last_step = 0.0  # and the step before it (s): the last frame's likely duration
        self.resized_frames = 0  # frames letterboxed to the first frame's size
        self.first_size: tuple[int, int] | None = None
        self.has_audio = any(a.codec_context is not None for a in self.container.streams.audio)
        self.rotation = 0.0
        self.bad_packets = 0
        self.frames_decoded = 0
        self._closed = False
        self._seek_pts: int | None = None

    def seek(self, pts: int) -> None:
        """Start decoding at the keyframe at or before ``pts`` (stream time base).

        Frames come out from that keyframe on, so a caller wanting frames from ``pts`` skips
        the ones before it. Used by the batch chunker; call before iterating.
        """
        try:
            self.container.seek(int(pts), stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError as exc:
            raise InputError(f"cannot seek in {self.path.name}: {_short(exc)}") from None
        self._seek_pts = int(pts)

    @property
    def truncated(self) -> bool:
        """True after a full read when packets were undecodable or the frames end clearly before
        the header says the video does (:func:`cut_short`): the file is cut short or damaged
        (the output is still usable)."""
        return self.bad_packets > 0 or cut_short(declared_frames=self.declared_frames, frames=self.frames_decoded,
                                                 declared_end=self.declared_end, last_time=self.last_time,
                                                 last_step=self.last_step or 1 / float(self.rate))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed (after rotation), known once a frame was decoded."""
        k = int(round(self.rotation / 90.0)) % 2
        return (self.coded_height, self.coded_width) if k else (self.coded_width, self.coded_height)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        for packet in self.container.demux(self.stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:  # corrupt packet: conceal, like ffmpeg does
                if "avcodec_open2" in str(exc):
                    raise InputError(f"cannot open the decoder for {self.path.name}: {_short(exc)}") from None
                self.bad_packets += 1
                log.debug("skipping undecodable packet: %s", exc)
                if self.bad_packets > MAX_BAD_PACKETS:
                    raise InputError(f"video {self.path.name} is too corrupt to decode ({_short(exc)})") from None
                continue
            yield from frames

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        last_pts = None
        first_size = None
        try:
            for vf in self._decoded():
                if vf.width * vf.height == 0:
                    continue
                if vf.width * vf.height > self.limit:
                    raise InputError(
                        f"video {self.path.name} has a {vf.width}x{vf.height} frame, over the limit of "
                        f"{self.limit} pixels (set BACKDROP_MAX_PIXELS to raise it)"
                    )
                rot = float(getattr(vf, "rotation", 0) or 0)
                self.rotation = rot
                if self.planar and _is_planar(vf, rot, first_size):
                    img = Planar(vf.to_ndarray(), vf.width, vf.height)
                    first_size = self.first_size = first_size or img.size
                else:
                    img = self._upright(vf.to_ndarray(format="rgb24"), rot, first_size)
                    first_size = self.first_size
                pts = vf.pts
                if pts is not None and (last_pts is None or pts > last_pts):
                    t = float(pts * self.time_base)
                    if self.last_time is not None:
                        self.last_step = t - self.last_time
                    self.last_time = t
                if pts is None or (last_pts is not None and pts <= last_pts):
                    step = max(1, round(1 / (float(self.rate) * float(self.time_base)))) if self.rate else 1
                    pts = (last_pts + step) if last_pts is not None else (self._seek_pts or 0)
                last_pts = pts
                yield Frame(img, pts, self.time_base, index)
                index += 1
                self.frames_decoded = index
        except av.error.FFmpegError as exc:
            raise InputError(f"video {self.path.name} is corrupt: {_short(exc)}") from None
        finally:
            self.close()
        if index == 0:
            extra = f" ({self.bad_packets} corrupt packets)" if self.bad_packets else ""
            raise InputError(f"video has no decodable frames: {self.path.name}{extra}")

    def _upright(self, img: np.ndarray, rot: float, first_size: tuple[int, int] | None) -> np.ndarray:
        """An RGB frame upright, at the first frame's size (letterboxed when the size changed)."""
        img = rotate_upright(img, rot)
        if first_size is None:
            self.first_size = img.shape[1], img.shape[0]
        elif (img.shape[1], img.shape[0]) != first_size:
            img = fit_into(img, first_size)
            self.resized_frames += 1
        return img

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.container.close()


def declared_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Where the container says the video stream ends, in seconds (0 when it does not say).

    Matroska/WebM written by FFmpeg carry the stream's own ``DURATION`` tag (the container's
    duration also counts a longer audio track); otherwise the stream's duration after its
    start, or the container's duration after its start.
    """
    tag = (stream.metadata or {}).get("DURATION", "")
    try:
        h, m, s = tag.split(":")
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
    except ValueError:
        seconds = 0.0
    tb = stream.time_base or Fraction(1, 90000)
    if not seconds and stream.duration:
        seconds = float((stream.duration + (stream.start_time or 0)) * tb)
    if not seconds and container.duration:
        seconds = float(container.duration + (container.start_time or 0)) / av.time_base
    return seconds if 0 < seconds < 10 ** 7 else 0.0


def cut_short(*, declared_frames: int, frames: int, declared_end: float, last_time: float | None,
              last_step: float) -> bool:
    """Whether a fully read video stopped clearly early: the one truncation rule (file jobs and
    batch chunks alike).

    With a declared frame count (MP4), fewer frames than declared; a few short is normal (an
    edit list trims samples the header still counts), so the shortfall must exceed 2 frames and
    2%. Without one (MKV, WebM), the last frame's timestamp plus its likely duration (the step
    before it) must reach the declared end, within 2 steps or 2%: a frame count from the average
    rate called every complete variable-frame-rate file (a slide held for 5 s) truncated.
    """
    if declared_frames > 0:
        short = declared_frames - frames
        return short > max(2, declared_frames // 50)
    if not declared_end or last_time is None:
        return False
    missing = declared_end - (last_time + max(0.0, last_step))
    return missing > max(2 * last_step, 0.02 * declared_end)


def _is_planar(vf: av.VideoFrame, rotation: float, first_size: tuple[int, int] | None) -> bool:
    """Whether a decoded frame can travel as its own planes: YUV 4:2:0, limited range (what the
    encoder gets), even size, upright, the stream's first size."""
    return (vf.format.name == "yuv420p" and vf.color_range != 2 and not rotation and planar_ok(vf.width, vf.height)
            and first_size in (None, (vf.width, vf.height)))


def probe(path: Path) -> dict:
    """Facts about a video, decoding it fully: frames, fps, duration, size, audio, rotation."""
    r = VideoReader(path)
    has_audio = r.has_audio
    audio_codec = next((a.codec_context.name for a in r.container.streams.audio if a.codec_context is not None),
                       None)
    n, first, last, size = 0, None, None, None
    for f in r:
        n += 1
        first = f.time if first is None else first
        last = f.time
        size = f.image.shape[1], f.image.shape[0]
    return {
        "frames": n, "fps": float(r.rate), "width": size[0], "height": size[1],
        "duration": (last - first) + 1 / float(r.rate) if n else 0.0,
        "has_audio": has_audio, "audio_codec": audio_codec, "rotation": r.rotation,
    }
