"""Fuzz the image and video loaders with Hypothesis: damaged bytes in, and the only allowed
outcomes are a correct frame (RGB uint8 HxWx3) or an ``InputError``. Never another exception,
never an endless loop (each example has a deadline).

The normal test run does a short, derandomised pass (the same examples every run, so CI is
stable). For a longer hunt: ``BACKDROP_FUZZ_EXAMPLES=5000 python -m pytest tests/test_fuzz.py``
(random examples when the variable is set). What earlier hunts found is in docs/reliability.md.
"""

from __future__ import annotations

import functools
import io
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from backdrop.errors import InputError
from conftest import shared_path

LONG = int(os.environ.get("BACKDROP_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=LONG or 150, deadline=5000, derandomize=not LONG, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FUZZ_VIDEO = settings(FUZZ, max_examples=LONG or 60)


def _photo() -> np.ndarray:
    im = Image.open(shared_path("portraits-soft", "images", "WechatIMG253_2.png")).convert("RGB")
    return np.asarray(im.resize((48, 40)))


def _image_seeds() -> dict[str, bytes]:
    photo = _photo()
    seeds = {}
    for name, fmt, kw in [("png", "PNG", {}), ("jpg", "JPEG", {"quality": 80}), ("webp", "WEBP", {}),
                          ("tif", "TIFF", {}), ("gif", "GIF", {}), ("bmp", "BMP", {})]:
        b = io.BytesIO()
        Image.fromarray(photo).save(b, format=fmt, **kw)
        seeds[name] = b.getvalue()
    b = io.BytesIO()
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(photo).save(b, format="JPEG", exif=ex.tobytes())
    seeds["exif.jpg"] = b.getvalue()
    b = io.BytesIO()
    Image.fromarray(photo[..., 0].astype(np.uint16) * 257).save(b, format="PNG")
    seeds["16.png"] = b.getvalue()
    return seeds


IMAGE_SEEDS = _image_seeds()


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, splice: tuple[int, int] | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    if splice is not None:
        i, j = splice[0] % len(b), splice[1] % len(b)
        b[i:i + 16] = b[j:j + 16]
    if cut is not None:
        b = b[: cut % (len(b) + 1)]
    return bytes(b)


edits_st = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12)
cut_st = st.none() | st.integers(0, 1 << 20)
splice_st = st.none() | st.tuples(st.integers(0, 1 << 20), st.integers(0, 1 << 20))


@FUZZ
@given(seed=st.sampled_from(sorted(IMAGE_SEEDS)), edits=edits_st, cut=cut_st, splice=splice_st)
def test_fuzz_image_loader(tmp_path, seed, edits, cut, splice):
    from backdrop.io.image import read_image

    p = tmp_path / f"fuzz.{seed.split('.')[-1]}"
    p.write_bytes(mutate(IMAGE_SEEDS[seed], edits, cut, splice))
    try:
        a = read_image(p)
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and a.flags.c_contiguous


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".jpg", ".webp", ".tif"]))
def test_fuzz_image_loader_raw_bytes(tmp_path, data, suffix):
    from backdrop.io.image import read_image

    p = tmp_path / f"raw{suffix}"
    p.write_bytes(data)
    try:
        read_image(p)
    except InputError:
        pass


@functools.cache
def video_seeds() -> dict[str, bytes]:
    """Tiny real clips (10 frames, 64x48) in MP4 with AAC audio, MKV and WebM (built once;
    a plain cached function, not a fixture, so failing examples print short)."""
    d = Path(tempfile.mkdtemp(prefix="backdrop-fuzz-"))
    src = av.open(str(shared_path("clips", "talking-room-512x480.mp4")))
    frames = []
    for f in src.decode(video=0):
        frames.append(f.reformat(width=64, height=48).to_ndarray(format="rgb24"))
        if len(frames) == 10:
            break
    src.seek(0)
    audio = [p for p in src.demux(audio=0) if p.size][:16]
    a_stream = src.streams.audio[0]
    seeds = {}
    for name, codec in [("clip.mp4", "libx264"), ("clip.mkv", "libx264"), ("clip.webm", "libvpx-vp9")]:
        path = d / name
        out = av.open(str(path), "w")
        s = out.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "4"} if codec == "libx264" else {"deadline": "realtime", "cpu-used": "8"}
        oa = out.add_stream_from_template(a_stream) if name == "clip.mp4" else None
        for k, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = k
            vf.time_base = Fraction(1, 30)
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
        if oa is not None:
            for p in audio:
                p.stream = oa
                out.mux(p)
        out.close()
        seeds[name] = path.read_bytes()
        path.unlink()
    src.close()
    d.rmdir()
    return seeds


@FUZZ_VIDEO
@given(seed=st.sampled_from(["clip.mp4", "clip.mkv", "clip.webm"]), edits=edits_st, cut=cut_st, splice=splice_st)
def test_fuzz_video_loader(tmp_path, seed, edits, cut, splice):
    """Decode every frame, and copy the audio as the writer does (a damaged audio stream once
    raised AttributeError / MemoryError from there)."""
    from backdrop.io.video import VideoReader, VideoWriter

    p = tmp_path / seed
    p.write_bytes(mutate(video_seeds()[seed], edits, cut, splice))
    out = tmp_path / "out.mkv"
    writer = None
    try:
        reader = VideoReader(p)
        for f in reader:
            assert f.image.dtype == np.uint8 and f.image.ndim == 3 and f.image.shape[2] == 3
            if writer is None:
                h, w = f.image.shape[:2]
                writer = VideoWriter(out, width=w, height=h, rate=reader.rate, time_base=reader.time_base,
                                     audio_from=p if reader.has_audio else None)
            writer.write(f.image, f.pts)
        if writer is not None:
            writer.close()
            writer = None
    except InputError as exc:
        assert "\n" not in str(exc)
    finally:
        if writer is not None:
            writer.abort()
        Path(out).unlink(missing_ok=True)
