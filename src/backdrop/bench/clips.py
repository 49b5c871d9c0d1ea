"""Sizes and clips for ``backdrop bench``: which frames get measured.

Kept apart from the measurements because making the input is not part of what is timed: a named
size (``720p``) or ``WxH`` is parsed here, the default real clip of people is found here, and
:func:`make_clip` writes the H.264 clip (scaled to cover the size, audio copied) that every
measurement then reads.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ..errors import InputError, OptionError
from ..io.video import VideoReader

# Named sizes (width, height). 480p is the 16:9 one.
SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
    "2160p": (3840, 2160),
}
DEFAULT_SIZES = ("480p", "720p", "1080p", "4k")
DEFAULT_FRAMES = 60
# Default source for generated frames: a real person at a desk, 16:9, so scaling is exact.
DEFAULT_SOURCE = ("clips", "office-desk-960x540.mp4")


# -- sizes and sources ------------------------------------------------------------------------

def parse_size(text: str) -> tuple[str, tuple[int, int]]:
    """``720p`` / ``4k`` / ``1280x720`` -> (label, (width, height))."""
    t = text.strip().lower()
    if t in SIZES:
        return ("4K" if t in ("4k", "2160p") else t), SIZES[t]
    m = re.fullmatch(r"(\d+)x(\d+)", t)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise OptionError(f"{{option}}: {text} is out of range (16..8192 pixels a side)", option="sizes")
        if w % 2 or h % 2:
            raise OptionError(f"{{option}}: {text} must have even width and height (H.264 4:2:0)", option="sizes")
        return f"{w}x{h}", (w, h)
    known = ", ".join(k for k in SIZES if k != "2160p")
    raise OptionError(f"{{option}}: unknown size {text!r}; use {known} or WxH", option="sizes")


def parse_sizes(text: str | None) -> list[tuple[str, tuple[int, int]]]:
    if text is None:
        return []
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise OptionError("{option} is empty; give e.g. 480p,720p,1080p,4k", option="sizes")
    return [parse_size(p) for p in parts]


def shared_data_dir() -> Path:
    """``BACKDROP_SHARED_DATA`` or ``../shared/data`` next to the checkout."""
    env = os.environ.get("BACKDROP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def default_source() -> Path | None:
    p = shared_data_dir().joinpath(*DEFAULT_SOURCE)
    return p if p.is_file() else None


# -- clips ------------------------------------------------------------------------------------

def _cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from ..compose.backgrounds import cover_resize

    if img.shape[1] == width and img.shape[0] == height:
        return img
    return cover_resize(img, width, height)


def make_clip(src: Path | None, dst: Path, size: tuple[int, int] | None = None, frames: int | None = None,
              *, crf: int = 18, preset: str = "veryfast", audio: bool = True) -> dict[str, Any]:
    """Write an H.264 clip: the first ``frames`` frames of ``src``, scaled to cover ``size``.

    ``src=None`` uses the bundled sample frames (the astronaut photo, panned). The source's audio
    is copied (packets, no re-encoding) up to the end of the last frame, interleaved by time, so
    the bench exercises the same audio copy as ``backdrop video``. Returns frames, size, audio.
    """
    dst = Path(dst)
    if src is None:
        from ..sample import sample_frames

        w, h = size or (640, 480)
        n = frames or DEFAULT_FRAMES
        rate, tb = Fraction(30), Fraction(1, 30)
        items: Iterator[tuple[np.ndarray, int]] = ((f, i) for i, f in enumerate(sample_frames(n, w, h)))
        reader = None
    else:
        reader = VideoReader(Path(src))
        rate, tb = reader.rate, reader.time_base
        items = ((f.image, f.pts) for f in reader)
    audio_in = None
    written, w_h, first_pts, last_pts = 0, None, None, None
    step = max(1, round(1 / (float(rate) * float(tb))))
    try:
        with av.open(str(dst), mode="w", format="mp4") as out:
            vs = None
            pairs: dict[int, Any] = {}
            pending = None
            demux = iter(())
            if src is not None and audio and reader is not None and reader.has_audio:
                audio_in = av.open(str(src), mode="r", metadata_errors="ignore")
                for ist in audio_in.streams.audio:
                    if ist.codec_context.name in ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"):
                        pairs[ist.index] = out.add_stream_from_template(ist)
                if pairs:
                    demux = audio_in.demux(*[audio_in.streams[i] for i in pairs])

            def copy_audio(until: float) -> None:
                nonlocal pending
                while pairs:
                    pkt = pending or next(demux, None)
                    pending = None
                    if pkt is None:
                        return
                    if pkt.dts is None:
                        continue
                    when = float((pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base)
                    if when > until:
                        pending = pkt
                        return
                    pkt.stream = pairs[pkt.stream.index]
                    out.mux(pkt)

            for img, pts in items:
                if frames is not None and written >= frames:
                    break
                if size is not None:
                    img = _cover(img, *size)
                if vs is None:
                    h, w = img.shape[:2]
                    w_h = (w, h)
                    vs = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(100000))
                    vs.width, vs.height = w, h
                    vs.pix_fmt = "yuv444p" if (w % 2 or h % 2) else "yuv420p"
                    vs.codec_context.time_base = tb
                    vs.time_base = tb
                    vs.options = {"crf": str(crf), "preset": preset}
                    first_pts = pts
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts, vf.time_base = int(pts), tb
                out.mux(vs.encode(vf))
                last_pts = pts
                written += 1
                copy_audio(float((pts - first_pts) * tb))
            if vs is None:
                raise InputError(f"no frames to benchmark in {src}")
            out.mux(vs.encode(None))
            copy_audio(float((last_pts - first_pts + step) * tb))
    finally:
        if reader is not None:
            reader.close()
        if audio_in is not None:
            audio_in.close()
    return {"frames": written, "width": w_h[0], "height": w_h[1], "has_audio": bool(audio_in is not None and pairs)}
