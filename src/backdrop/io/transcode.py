"""The one decode -> per-frame function -> encode loop behind every file-to-file video job.

``backdrop video`` (:func:`backdrop.process.process_video`), each chunk of ``backdrop batch``
(:func:`backdrop.cluster.chunking.render_chunk`) and the bare-transcode baseline of ``backdrop
bench`` all need the same tail: open the encoder lazily on the first output frame (its size is
only known then), write into a temp file that is renamed over the destination only when
complete, optionally decode ahead and encode behind on threads, and on any failure (Ctrl-C
included) stop the threads, drop the half-written encoder and leave nothing behind. Written
once here so a fix to that tail (an error path, a thread left running) reaches every job.

The loop knows nothing about mattes: what happens to a frame is the caller's ``stream``
function, which turns the decoded items into ``(pts, image)`` pairs (a pipeline, a filter that
keeps only some frames, or a plain format conversion).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..errors import InputError, signals_deferred
from ..planar import Planar
from .atomic import atomic_output, check_written
from .threaded import BackgroundWriter, opencv_pool_shared, prefetch
from .video import VideoWriter, validate_encoder_options

T = TypeVar("T")

Stream = Callable[[Iterable[T]], Iterable[tuple["int | None", Any]]]
"""Decoded items in, ``(pts, output image)`` out, in output order; may drop or add items. An
output may be a function that makes the image (``Pipeline.stream(defer=True)``): with
``overlap`` it is called on the encoder's thread, in order."""


@dataclass(frozen=True)
class EncodeSettings:
    """How the output is encoded: every :class:`VideoWriter` argument but the picture size.

    Checked when made (crf range, x264 preset), so a bad value fails before a temp file exists.
    """

    rate: Fraction
    time_base: Fraction
    pixel_format: str = "rgb"  # rgb | rgba | gray, the shape of the images ``stream`` yields
    crf: int = 20
    preset: str = "veryfast"
    suffix: str | None = None  # container choice; default: the destination's suffix
    audio_from: Path | None = None  # a file whose audio is copied in

    def __post_init__(self) -> None:
        validate_encoder_options(self.crf, self.preset)

    def writer(self, path: Path, width: int, height: int, suffix: str) -> VideoWriter:
        return VideoWriter(path, width=width, height=height, rate=self.rate, time_base=self.time_base,
                           pixel_format=self.pixel_format, crf=self.crf, preset=self.preset,
                           suffix=self.suffix or suffix, audio_from=self.audio_from)


@dataclass
class TranscodeStats:
    frames: int  # frames written
    seconds: float  # wall time of the whole loop, encoder flush included
    width: int
    height: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


CHECK_EVERY = 8  # frames between two checks that the temp file still exists (one fstat)


def queue_depth(width: int, height: int) -> int:
    """Frames a thread may run ahead of the next: 4, or 1 from 8 megapixels (4K), where every
    frame in flight is 12 MB of planes and more depth bought no speed. Measured at 4K on two
    cores, peak RSS of ``backdrop video``: depth 4 1135 MB, 2 1084 MB; with one decoder thread
    (``ONE_DECODER_THREAD_FROM``) depth 2 1002-1022 MB, 1 977-1004 MB, frames/s the same
    within the noise (13-16)."""
    return 1 if width * height >= 8_000_000 else 4


def transcode(frames: Iterable[T], dst: str | Path, settings: EncodeSettings, stream: Stream, *,
              overlap: bool = False, depth: int = 4, on_frame: Callable[[int], None] | None = None,
              timer: Callable[[str], AbstractContextManager[Any]] | None = None,
              empty: BaseException | None = None, check: Callable[[int], None] | None = None) -> TranscodeStats:
    """Encode ``stream(frames)`` into ``dst`` atomically; return what was written.

    ``frames`` is any iterable of decoded items (a :class:`VideoReader` usually; the caller
    closes it). With ``overlap`` the items are decoded ``depth`` ahead on one thread and the
    images encoded up to ``depth`` behind on another, and OpenCV's pool is cut to the cores those
    threads leave (:func:`~backdrop.io.threaded.opencv_pool_shared`); the file is identical either way.
    ``on_frame(n)`` runs after the n-th image was handed to the encoder (progress bars, test
    hooks); ``timer("encode")``, when given, wraps each encode (a :class:`StageTimer`).
    ``empty`` is raised when ``stream`` yields nothing (default: an :class:`InputError`).
    ``check(frames)`` runs once every frame was encoded, before the output is finished: an
    exception from it (``--strict`` on a truncated input) leaves no output.
    Output is complete at ``dst`` or absent; the first error is the one raised.
    """
    dst = Path(dst)
    t0 = time.perf_counter()
    frames_in = prefetch(frames, depth=depth) if overlap else frames
    count, size = 0, (0, 0)
    try:
        with opencv_pool_shared() if overlap else nullcontext(), atomic_output(dst) as tmp:
            writer: VideoWriter | None = None
            behind: BackgroundWriter | None = None
            encoder: BackgroundWriter | None = None  # with deferred images: behind makes, this encodes

            def encode(image: Any, pts: int | None) -> None:
                if callable(image):
                    image = image()
                with timer("encode") if timer is not None else nullcontext():
                    writer.write(image, pts)

            def make(image: Any, pts: int | None) -> None:
                encoder.write(image() if callable(image) else image, pts)

            def close_threads(quietly: bool) -> None:
                nonlocal behind, encoder
                for thread in (behind, encoder):  # the maker first: it feeds the encoder
                    if thread is not None:
                        try:
                            thread.close()
                        except BaseException:  # the first error is the one to report
                            if not quietly:
                                raise
                behind = encoder = None

            try:
                for pts, image in stream(frames_in):
                    if writer is None:
                        deferred = callable(image)  # Pipeline.stream(defer=True): all are functions
                        image = image() if deferred else image  # its size opens the encoder
                        size = image.size if isinstance(image, Planar) else (image.shape[1], image.shape[0])
                        writer = settings.writer(tmp, size[0], size[1], dst.suffix)
                        with signals_deferred():  # a stop lands once both are known to close_threads
                            if overlap and deferred:
                                # three threads after the decoder's: the stream's work, the
                                # deferred full-size images, the encoder (each bounded)
                                encoder = BackgroundWriter(encode, depth=max(1, depth // 2))
                                behind = BackgroundWriter(make, depth=max(1, depth // 2))
                            elif overlap:
                                behind = BackgroundWriter(encode, depth=depth)
                    if behind is not None:
                        behind.write(image, pts)
                    else:
                        encode(image, pts)
                    count += 1
                    if count % CHECK_EVERY == 1:  # the output folder deleted: stop now, not at the end
                        check_written(tmp)
                    if on_frame is not None:
                        on_frame(count)
                if writer is None:
                    raise empty if empty is not None else InputError(f"no frames to write to {dst.name}")
                close_threads(quietly=False)
                if check is not None:
                    check(count)
                writer.close()
            except BaseException:
                close_threads(quietly=True)
                if writer is not None:
                    writer.discard()
                raise
    finally:
        if overlap:
            frames_in.close()  # stop the decode thread now, not when garbage-collected
    return TranscodeStats(count, time.perf_counter() - t0, *size)


__all__ = ["EncodeSettings", "Stream", "TranscodeStats", "queue_depth", "transcode"]
