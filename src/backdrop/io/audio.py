"""Copying a source file's audio into a video being written (used by :class:`VideoWriter`).

Packets are copied without re-encoding when the output container can hold the codec, else
transcoded to AAC/Opus (or MP3 for .avi). Audio is a passenger: damage drops it with a warning.
Exists apart from the writer because the batch chunker also drives it directly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import av

from ..errors import OutputError
from .ffmpeg import _is_disk_full, _short

log = logging.getLogger(__name__)

AUDIO_COPY_OK = {
    ".mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"},
    ".m4v": {"aac", "mp3", "alac", "ac3", "eac3"},
    ".mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le", "pcm_s16be"},
    ".webm": {"opus", "vorbis"},
    ".mkv": None,  # anything
    ".avi": {"mp3", "ac3", "pcm_s16le"},
}
AUDIO_FALLBACK = {".webm": "libopus", ".avi": "mp3"}


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
