"""Uploaded backgrounds larger than a frame are scaled down once, on upload.

An 8K picture or video as a live background costs the peer a cover-resize of 33 Mpixels per
frame (its frame rate) and hundreds of MB; nothing that large is ever shown. Pictures are
decoded, resized with area averaging and stored again; videos are transcoded (H.264, at most
``MAX_VIDEO_FRAMES`` frames: a looping background needs no more). Runs off the event loop.
"""

from __future__ import annotations

import io
from pathlib import Path

MAX_VIDEO_FRAMES = 600
MAX_PIXELS = 100_000_000  # 8K is 33 Mpixels; beyond this a picture is refused, not decoded


def _fit(w: int, h: int, side: int) -> tuple[int, int] | None:
    if max(w, h) <= side:
        return None
    s = side / max(w, h)
    return max(2, int(w * s) // 2 * 2), max(2, int(h * s) // 2 * 2)


def shrink_image(data: bytes, side: int) -> tuple[bytes, str, tuple[int, int]] | None:
    """(new bytes, suffix, (w, h)) when the picture is larger than ``side``; else None."""
    import cv2
    import numpy as np
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:  # reads the header only
        w, h = im.size
        fmt = im.format
    if w * h > MAX_PIXELS:
        raise ValueError(f"{w}x{h} pixels is more than a background needs")
    size = _fit(w, h, side)
    if size is None:
        return None
    flag = cv2.IMREAD_COLOR
    if fmt == "JPEG":  # libjpeg decodes at 1/2, 1/4, 1/8 directly: a fraction of the memory and time
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if max(w, h) / factor >= side:
                flag = reduced
                break
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if img is None:
        return None  # the decoder refuses it: the normal path reports why
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return (buf.tobytes(), ".jpg", size) if ok else None


def shrink_video(path: Path, side: int) -> tuple[int, int] | None:
    """Transcode ``path`` in place when its frames are larger than ``side``; the new (w, h)."""
    import av

    with av.open(str(path)) as src:
        streams = src.streams.video
        if not streams:
            return None
        size = _fit(streams[0].codec_context.width, streams[0].codec_context.height, side)
    if size is None:
        return None
    out_path = path.with_name(path.stem + "-small.mp4")
    n = 0
    with av.open(str(path)) as src, av.open(str(out_path), "w") as dst:
        vs = src.streams.video[0]
        rate = vs.average_rate or 30
        enc = dst.add_stream("libx264", rate=rate)
        enc.width, enc.height, enc.pix_fmt = size[0], size[1], "yuv420p"
        enc.options = {"preset": "veryfast", "crf": "23"}
        try:
            for frame in src.decode(vs):
                for pkt in enc.encode(frame.reformat(width=size[0], height=size[1], format="yuv420p")):
                    dst.mux(pkt)
                n += 1
                if n >= MAX_VIDEO_FRAMES:
                    break
        except av.FFmpegError:
            if n == 0:
                raise
        for pkt in enc.encode():
            dst.mux(pkt)
    out_path.replace(path.with_suffix(".mp4"))
    if path.suffix != ".mp4":
        path.unlink(missing_ok=True)
    return size
