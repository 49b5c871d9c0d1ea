"""Small real media files made on the fly for tests (from real shared frames)."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: list[np.ndarray], *, fps: int = 25, audio: bool = True,
                pts: list[int] | None = None, time_base: Fraction | None = None) -> Path:
    """H.264 (+AAC tone) mp4 from RGB frames; ``pts`` in ``time_base`` units for VFR files."""
    h, w = frames[0].shape[:2]
    tb = time_base or Fraction(1, fps)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = tb
        vs.options = {"crf": "16", "preset": "ultrafast"}
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "mono"
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = pts[i] if pts else i
            vf.time_base = tb
            out.mux(vs.encode(vf))
        out.mux(vs.encode(None))
        if audio:
            duration = float((pts[-1] + 1) * tb) if pts else len(frames) / fps
            n = int(44100 * duration)
            tone = (0.1 * np.sin(np.arange(n) * 2 * np.pi * 330 / 44100)).astype(np.float32)
            for s in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(tone[None, s:s + 1024], format="flt", layout="mono")
                af.sample_rate = 44100
                af.pts = s
                af.time_base = Fraction(1, 44100)
                out.mux(a.encode(af))
            out.mux(a.encode(None))
    return path


def set_mp4_rotation(path: Path, degrees: int) -> None:
    """Patch the video track's tkhd display matrix in place, as a phone would write it.

    ``degrees`` is the clockwise rotation a player applies (ffmpeg's ``rotate`` tag): 90 -> the
    stored frames are shown turned 90 degrees clockwise.
    """
    data = bytearray(Path(path).read_bytes())
    one, zero, w = 1 << 16, 0, 1 << 30
    mats = {90: (zero, one, 0, -one, zero, 0, 0, 0, w), 180: (-one, zero, 0, zero, -one, 0, 0, 0, w),
            270: (zero, -one, 0, one, zero, 0, 0, 0, w), 0: (one, zero, 0, zero, one, 0, 0, 0, w)}
    pos = 0
    patched = 0
    while True:
        pos = data.find(b"tkhd", pos)
        if pos < 0:
            break
        version = data[pos + 4]
        off = pos + 4 + 4 + (8 + 8 + 4 + 4 + 8 if version == 1 else 4 + 4 + 4 + 4 + 4) + 8 + 2 + 2 + 2 + 2
        width = struct.unpack(">I", data[off + 36:off + 40])[0]
        if width:  # the video track (audio tracks have zero width)
            data[off:off + 36] = struct.pack(">9i", *mats[degrees])
            patched += 1
        pos += 4
    assert patched == 1, "no video tkhd found"
    Path(path).write_bytes(bytes(data))


def clip_frames(path: Path, n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first ``n`` RGB frames of a real clip, optionally resized to (w, h)."""
    import cv2

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            img = f.to_ndarray(format="rgb24")
            out.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA) if size else img)
            if len(out) == n:
                break
    return out


def make_clip(src: Path, dst: Path, frames: int, size: tuple[int, int], *, gop: int = 10, audio: bool = True,
              faststart: bool = False) -> Path:
    """A short re-encoded copy of a real shared clip (first ``frames`` frames, audio trimmed)."""
    i = av.open(str(src))
    v = i.streams.video[0]
    o = av.open(str(dst), "w", options={"movflags": "+faststart"} if faststart else {})
    ov = o.add_stream("libx264", rate=v.average_rate)
    ov.time_base = v.time_base
    ov.codec_context.time_base = v.time_base
    ov.width, ov.height = size
    ov.pix_fmt = "yuv420p"
    ov.options = {"g": str(gop), "crf": "26", "preset": "veryfast"}
    a = i.streams.audio[0] if audio and i.streams.audio else None
    oa = o.add_stream_from_template(a) if a else None
    end, k = 0.0, 0
    for f in i.decode(v):
        if k >= frames:
            break
        f = f.reformat(width=size[0], height=size[1])
        f.pict_type = av.video.frame.PictureType.NONE
        o.mux(ov.encode(f))
        end, k = float(f.pts * v.time_base), k + 1
    o.mux(ov.encode(None))
    if a:
        i.seek(0)
        for p in i.demux(a):
            if p.pts is not None and p.size and float(p.pts * a.time_base) <= end:
                p.stream = oa
                o.mux(p)
    o.close()
    i.close()
    return dst
