"""The call-like degradation: what a video call does to a picture before a viewer upscales it.

Why this exact chain: a publisher that sends at half size shrinks the camera frame (browsers and
libwebrtc use a box/area filter for a 2x shrink), then the real-time encoder (H.264 or VP8, one
key frame and then only predicted frames, at a few hundred kbit/s) throws detail away. A network
trained on clean bicubic-shrunk images learns to sharpen codec blocking and ringing too; trained
on this chain it learns to upscale *compressed* video (the point of issue 22). The training data
(``backdrop train sr``) and the benchmark (``benchmarks/upscale.py``) both go through this one
function, so what is trained is what is measured.

Encoders are FFmpeg's libx264 (``tune=zerolatency``: no B-frames, no look-ahead, as in calls)
and libvpx (VP8, ``deadline=realtime``, speed -6 as libwebrtc sets it), run through PyAV without
a container, on one thread each so that the same input always gives the same frames.
"""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np

from ..errors import OptionError

CODECS = {"h264": ("libx264", "h264"), "vp8": ("libvpx", "vp8")}
REFERENCE_PIXELS = 640 * 360
"""Bit rates are given for a 640x360 picture at 30 frames/s and scaled by the pixel count, so
that a 320x180 training crop gets as many bits a pixel as the 360p call it stands for."""


def shrink(rgb: np.ndarray, scale: int = 2) -> np.ndarray:
    """RGB uint8 HxWx3 -> (H/scale)x(W/scale)x3 with the area filter (sizes must divide)."""
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w // scale, h // scale), interpolation=cv2.INTER_AREA)


def _encoder(codec: str, width: int, height: int, kbps: float) -> av.CodecContext:
    enc = av.CodecContext.create(CODECS[codec][0], "w")
    enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, 30), Fraction(30)
    enc.bit_rate = int(kbps * 1000 * width * height / REFERENCE_PIXELS)
    enc.gop_size = 100000  # one key frame: calls send a new one only on loss or request
    enc.thread_count = 1  # one thread: the same bits on every run (libvpx threads are not)
    # VP8 as libwebrtc runs it: real-time deadline, a fixed (negative) speed, no look-ahead
    enc.options = ({"preset": "veryfast", "tune": "zerolatency"} if codec == "h264"
                   else {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"})
    return enc


def codec_roundtrip(frames_i420: list[np.ndarray], codec: str = "h264", kbps: float = 500.0) -> list[np.ndarray]:
    """Encode I420 frames (uint8 (H*3/2, W), even W and H) as one real-time stream at ``kbps``
    (for 640x360, scaled by area) and decode them again: the I420 frames a viewer receives."""
    if codec not in CODECS:
        raise OptionError(f"{{option}} must be one of {', '.join(CODECS)}, not {codec!r}", option="codec")
    rows, width = frames_i420[0].shape
    height = rows * 2 // 3
    enc, dec = _encoder(codec, width, height, kbps), av.CodecContext.create(CODECS[codec][1], "r")
    out: list[np.ndarray] = []
    for i, data in enumerate([*frames_i420, None]):
        if data is None:
            packets = enc.encode(None)
        else:
            vf = av.VideoFrame.from_ndarray(data, format="yuv420p")
            vf.pts = i
            packets = enc.encode(vf)
        for packet in packets:
            out += [f.to_ndarray(format="yuv420p") for f in dec.decode(packet)]
    out += [f.to_ndarray(format="yuv420p") for f in dec.decode(None)]
    return out


def call_degrade(frames_rgb: list[np.ndarray], codec: str = "h264", kbps: float = 500.0,
                 scale: int = 2) -> list[np.ndarray]:
    """Full-size RGB frames (even multiples of ``2*scale``) -> the I420 frames a viewer decodes
    after the publisher shrank them by ``scale`` and sent them at ``kbps`` with ``codec``."""
    small = [cv2.cvtColor(shrink(f, scale), cv2.COLOR_RGB2YUV_I420) for f in frames_rgb]
    return codec_roundtrip(small, codec, kbps)


def crop_even(rgb: np.ndarray, multiple: int = 4) -> np.ndarray:
    """The top-left part of ``rgb`` whose sides are multiples of ``multiple`` (shrinkable by 2
    into even I420 planes)."""
    h, w = rgb.shape[:2]
    return rgb[:h - h % multiple, :w - w % multiple]


__all__ = ["CODECS", "REFERENCE_PIXELS", "call_degrade", "codec_roundtrip", "crop_even", "shrink"]
