"""Video input and output with PyAV (FFmpeg).

Reading streams frames one at a time as RGB uint8 HxWx3, rotated upright when the file carries a
display-rotation (phone videos), with each frame's own timestamp so variable-frame-rate timing
survives. Writing encodes H.264 (CRF), VP9, or the alpha formats ProRes 4444 (.mov) and VP9 with
alpha (.webm), reuses the input's timestamps (same frame count, same timing), and copies the
input's audio packets without re-encoding when the output container can hold the codec (else it
transcodes to AAC/Opus). Nothing here knows about mattes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np

from ..errors import InputError, OptionError, OutputError
from .image import max_pixels

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi"}
VIDEO_INPUT_SUFFIXES = VIDEO_SUFFIXES | {".gif"}  # what we read as video (GIF in, never out)
AUDIO_COPY_OK = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    ".m4v": {"aac", "mp3", "alac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le", "pcm_s16be"},
    ".webm": {"opus", "vorbis"},
    ".mkv": None,  # anything
    ".avi": {"mp3", "ac3", "pcm_s16le"},
}
AUDIO_FALLBACK = {".webm": "libopus", ".avi": "mp3"}
MAX_BAD_PACKETS = 200
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


def validate_encoder_options(crf: int, preset: str) -> None:
    """Refuse a ``crf`` outside 0..51 or an unknown x264 ``preset`` with one line.

    Called before any output exists: left to FFmpeg, a bad preset fails only once the encoder
    opens, mid-job, with a library traceback. The preset is checked whatever the codec, so a
    typo is caught even where it would be ignored (VP9, ProRes).
    """
    try:
        crf_ok = 0 <= crf <= 51
    except TypeError:
        crf_ok = False
    if not crf_ok:
        raise OptionError(f"{{option}} must be between 0 and 51, got {crf!r}", option="crf")
    if preset not in X264_PRESETS:
        raise OptionError(f"{{option}} must be one of {', '.join(X264_PRESETS)}; got {preset!r}", option="preset")


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


def _open_input(path: Path, limit: int | None = None):
    """Open ``path`` for reading with FFmpeg's own pixel cap in force.

    ``avformat_find_stream_info`` decodes a first frame of some codecs (PNG, MJPEG, H.264...)
    while opening, so a 1 MB file declaring 16000x16000 would allocate 768 MB before any check
    of ours could run. Passing ``max_pixels`` to the stream decoders makes FFmpeg refuse that
    picture instead; its log line says the declared size, which we report.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video: {path}")
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError(f"input is not readable (permission denied): {path}") from None
    limit = limit or max_pixels()
    with _ffmpeg_log() as logs:
        try:
            container = av.open(str(path), mode="r", metadata_errors="ignore",
                                options={"max_pixels": str(limit)})
        except av.error.FFmpegError as exc:
            _raise_if_over_limit(path, logs, limit)
            if isinstance(exc, av.error.MemoryError):  # FFmpeg refused a size read from a damaged header
                raise InputError(f"not a readable video (corrupt): {path.name}: its header asks for an "
                                 "impossible amount of memory") from None
            raise InputError(f"not a readable video (corrupt or unsupported): {path.name}: {_short(exc)}") from None
    try:
        _raise_if_over_limit(path, logs, limit)
    except InputError:
        container.close()
        raise
    return container


_PICTURE_SIZE = re.compile(r"Picture size (\d+)x(\d+)")


@contextlib.contextmanager
def _ffmpeg_log():
    """Capture FFmpeg's error log lines for the duration (they name the declared size)."""
    old = av.logging.get_level()
    try:
        av.logging.set_level(av.logging.ERROR)
    except Exception:  # pragma: no cover - logging API differences
        yield []
        return
    try:
        with av.logging.Capture(local=True) as logs:
            yield logs
    finally:
        av.logging.set_level(old)


def _raise_if_over_limit(path: Path, logs, limit: int) -> None:
    for entry in list(logs):
        m = _PICTURE_SIZE.search(str(entry[-1]))
        if m and int(m.group(1)) * int(m.group(2)) > limit:
            raise InputError(
                f"video {path.name} declares {m.group(1)}x{m.group(2)} pixels, over the limit of {limit} "
                "(set BACKDROP_MAX_PIXELS to raise it)"
            )


def _short(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0][:160]


def rotate_upright(img: np.ndarray, rotation: float) -> np.ndarray:
    """Rotate by the display matrix angle (degrees counter-clockwise, as PyAV reports it)."""
    k = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(img, k)) if k else img


class VideoReader:
    """Iterate the frames of a video file. Use as an iterable; the file is closed at the end."""

    def __init__(self, path: Path, *, threads: int | None = None, limit: int | None = None):
        self.path = Path(path)
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
        self.stream.thread_type = "AUTO"
        if threads:
            cc.thread_count = int(threads)
        # the decoder refuses pictures over the limit (a size change mid-stream included)
        cc.options = {**(cc.options or {}), "max_pixels": str(limit)}
        self.coded_width, self.coded_height = int(cc.width or 0), int(cc.height or 0)
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
        if not self.frame_count and self.stream.duration:
            self.frame_count = int(round(float(self.stream.duration * self.time_base) * float(self.rate)))
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
        """True after a full read when packets were undecodable or clearly fewer frames decoded
        than the header declared: the file is cut short or damaged (output is still usable).

        A few frames short is normal (an MP4 edit list trims samples the header still counts),
        so the shortfall must exceed 2 frames and 2% before it counts.
        """
        declared = self.declared_frames
        short = declared - self.frames_decoded
        return self.bad_packets > 0 or (declared > 0 and short > max(2, declared // 50))

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
                img = vf.to_ndarray(format="rgb24")
                img = rotate_upright(img, rot)
                pts = vf.pts
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

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.container.close()


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


def choose_video_codec(suffix: str, kind: str, width: int, height: int) -> tuple[str, str, dict]:
    """(codec, pix_fmt, options) for an output suffix and a frame kind rgb/rgba/gray."""
    odd = width % 2 or height % 2
    if kind == "rgba":
        if suffix == ".mov":
            return "prores_ks", "yuva444p10le", {"profile": "4444", "vendor": "apl0"}
        if suffix == ".webm":
            return "libvpx-vp9", "yuva420p", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1",
                                              "auto-alt-ref": "0"}
        if suffix == ".mkv":
            return "ffv1", "bgra", {}
        raise OutputError(f"transparent video needs .mov (ProRes 4444), .webm (VP9) or .mkv (FFV1), not {suffix}")
    if suffix == ".webm":
        return "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    if suffix == ".avi":
        return "mpeg4", "yuv420p", {"qscale": "3"}
    return "libx264", ("yuv444p" if odd else "yuv420p"), {}


class VideoWriter:
    """Encode frames to ``path`` (which should be a temp path: see :mod:`backdrop.io.atomic`).

    ``kind`` is ``rgb`` (HxWx3), ``rgba`` (HxWx4) or ``gray`` (HxW). ``audio_from`` is a file
    whose audio streams are copied into the output, interleaved with the video by time.
    """

    def __init__(self, path: Path, *, width: int, height: int, rate: Fraction, time_base: Fraction,
                 kind: str = "rgb", crf: int = 20, preset: str = "veryfast",
                 audio_from: Path | None = None, suffix: str | None = None, threads: int | None = None):
        self.path = Path(path)
        suffix = (suffix or self.path.suffix).lower()
        if suffix not in VIDEO_SUFFIXES:
            raise OutputError(f"unsupported video output {suffix or self.path.name}: use .mp4, .mov, .mkv or .webm")
        fmt = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}[suffix]
        validate_encoder_options(crf, preset)
        codec, pix_fmt, options = choose_video_codec(suffix, kind, width, height)
        if codec == "libx264":
            options = {"crf": str(crf), "preset": preset}
        elif codec == "libvpx-vp9":
            options = {**options, "crf": str(min(63, crf + 12)), "b": "0"}
        try:
            self.container = av.open(str(self.path), mode="w", format=fmt)
        except (av.error.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot create {self.path}: {_short(exc)}") from None
        self.kind = kind
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

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        if self.kind == "rgba":
            vf = av.VideoFrame.from_ndarray(image, format="rgba")
        elif self.kind == "gray":
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


class _AudioCopier:
    """Copies the audio of a source file into an output container, in time order.

    Audio is a passenger: a damaged audio stream (unknown codec, unreadable packets) drops the
    audio with a warning rather than failing a video whose pictures are fine.
    """

    def __init__(self, source: Path, out, suffix: str):
        self.src = av.open(str(source), mode="r", metadata_errors="ignore")
        self.out = out
        self.pairs = {}
        self.encoders = {}
        self.source = Path(source)
        allowed = AUDIO_COPY_OK.get(suffix, set())
        for ist in self.src.streams.audio:
            if ist.codec_context is None:
                log.warning("audio stream %d of %s has an unknown codec; dropped", ist.index, self.source.name)
                continue
            name = ist.codec_context.name
            if not _plausible_audio(ist.codec_context):
                log.warning("audio stream %d of %s has damaged parameters; dropped", ist.index, self.source.name)
                continue
            try:
                if allowed is None or name in allowed:
                    ost = out.add_stream_from_template(ist)
                    self.pairs[ist.index] = (ist, ost, False)
                else:
                    enc = AUDIO_FALLBACK.get(suffix, "aac")
                    rate = ist.codec_context.sample_rate or 48000
                    if enc == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                        rate = 48000
                    ost = out.add_stream(enc, rate=rate)
                    self.pairs[ist.index] = (ist, ost, True)
                    log.info("audio %s cannot be copied into %s; re-encoding to %s", name, suffix, enc)
            except (av.error.FFmpegError, ValueError) as exc:
                log.warning("audio stream %d of %s cannot be written (%s); dropped", ist.index,
                            self.source.name, _short(exc))
        self._demux = self.src.demux(*[p[0] for p in self.pairs.values()]) if self.pairs else iter(())
        self._pending = None
        self._done = not self.pairs

    def _next_packet(self):
        try:
            return next(self._demux, None)
        except av.error.FFmpegError as exc:  # damaged audio: keep what was copied so far
            log.warning("audio of %s is damaged (%s); the rest of it is dropped", self.source.name, _short(exc))
            return None

    def copy_until(self, t: float) -> None:
        while not self._done:
            pkt = self._pending or self._next_packet()
            self._pending = None
            if pkt is None:
                self._done = True
                self._flush_encoders()
                return
            if pkt.dts is None and pkt.pts is None:
                if pkt.size == 0:
                    continue
            when = float((pkt.pts if pkt.pts is not None else pkt.dts or 0) * pkt.time_base)
            if when > t:
                self._pending = pkt
                return
            ist, ost, transcode = self.pairs[pkt.stream.index]
            try:
                if transcode:
                    for frame in pkt.decode():
                        frame.pts = None
                        self.out.mux(ost.encode(frame))
                else:
                    if pkt.dts is None:
                        continue
                    pkt.stream = ost
                    self.out.mux(pkt)
            except av.error.FFmpegError as exc:
                if _is_disk_full(exc):
                    raise OutputError(f"no space left on the device while writing {self.out.name}") from None
                log.debug("dropping bad audio packet: %s", exc)

    def _flush_encoders(self) -> None:
        for ist, ost, transcode in self.pairs.values():
            if transcode:
                try:
                    self.out.mux(ost.encode(None))
                except av.error.FFmpegError as exc:
                    if _is_disk_full(exc):
                        raise OutputError(f"no space left on the device while writing {self.out.name}") from None
                    log.debug("audio encoder flush failed: %s", exc)

    def close(self) -> None:
        self.src.close()


def _plausible_audio(cc) -> bool:
    """Channel count and sample rate a muxer will accept (a damaged header can say 0 channels,
    which passes until the output's trailer is written and then fails the whole video)."""
    try:
        channels = int(getattr(cc, "channels", 0) or len(cc.layout.channels))
        rate = int(cc.sample_rate or 0)
    except (AttributeError, TypeError, ValueError):
        return False
    return 0 < channels <= 64 and 1000 <= rate <= 768000


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
