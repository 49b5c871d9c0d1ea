"""FFmpeg plumbing shared by video reading, writing and audio copying.

Exists so that the reader, the writer and the audio copier (separate modules) share one way of
opening an input under the pixel cap, capturing FFmpeg's log, shortening its error messages and
recognising a full disk, without importing each other.
"""

from __future__ import annotations

import contextlib
import errno
import re
from pathlib import Path

import av
import av.logging

from ..errors import InputError
from .image import check_regular_file, max_pixels


def _open_input(path: Path, limit: int | None = None):
    """Open ``path`` for reading with FFmpeg's own pixel cap in force.

    ``avformat_find_stream_info`` decodes a first frame of some codecs (PNG, MJPEG, H.264...)
    while opening, so a 1 MB file declaring 16000x16000 would allocate 768 MB before any check
    of ours could run. Passing ``max_pixels`` to the stream decoders makes FFmpeg refuse that
    picture instead; its log line says the declared size, which we report.
    """
    path = Path(path)
    check_regular_file(path, "a video")
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


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
