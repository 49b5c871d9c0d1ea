"""Video round trips on real frames: frame count, duration, audio, rotation, VFR, alpha."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from backdrop import Pipeline, process_video
from backdrop.io.video import VideoReader, probe
from media import clip_frames, set_mp4_rotation, write_video

from conftest import shared_path


@pytest.fixture(scope="module")
def talking_frames():
    return clip_frames(shared_path("clips", "talking-room-512x480.mp4"), 24, (256, 240))


def test_roundtrip_keeps_frames_duration_and_audio(tmp_path, talking_frames):
    src = write_video(tmp_path / "in.mp4", talking_frames, fps=25, audio=True)
    dst = tmp_path / "out.mp4"
    stats = process_video(src, dst, background="#00ff00", quiet=True)
    a, b = probe(src), probe(dst)
    assert b["frames"] == a["frames"] == len(talking_frames) == stats["frames"]
    assert abs(b["duration"] - a["duration"]) <= 1 / 25 + 1e-6
    assert b["has_audio"] and b["audio_codec"] == a["audio_codec"] == "aac"
    # the audio packets were copied, not re-encoded: identical payloads
    def audio_bytes(p):
        with av.open(str(p)) as c:
            return b"".join(bytes(pk) for pk in c.demux(c.streams.audio[0]) if pk.size)
    assert audio_bytes(src) == audio_bytes(dst)


def test_rotated_phone_video_comes_out_upright(tmp_path, talking_frames):
    upright = talking_frames[:8]
    stored = [np.ascontiguousarray(np.rot90(f, 1)) for f in upright]  # sensor orientation
    src = write_video(tmp_path / "phone.mp4", stored, fps=25, audio=False)
    set_mp4_rotation(src, 90)  # players turn it 90 degrees clockwise: upright again
    dst = tmp_path / "out.mp4"
    process_video(src, dst, background="matte", quiet=True)
    info = probe(dst)
    assert (info["width"], info["height"]) == (upright[0].shape[1], upright[0].shape[0])
    assert info["rotation"] == 0
    # the decoded input is upright too, pixel for pixel close to the upright originals
    first = next(iter(VideoReader(src))).image
    assert first.shape == upright[0].shape
    assert np.abs(first.astype(int) - upright[0].astype(int)).mean() < 6


def test_variable_frame_rate_timestamps_kept(tmp_path, talking_frames):
    tb = Fraction(1, 1000)
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 900, 940]
    src = write_video(tmp_path / "vfr.mp4", talking_frames[:10], fps=25, audio=False, pts=pts, time_base=tb)
    dst = tmp_path / "out.mp4"
    process_video(src, dst, background="blur", quiet=True)
    times_in = [round(f.time, 3) for f in VideoReader(src)]
    times_out = [round(f.time, 3) for f in VideoReader(dst)]
    assert times_out == times_in
    assert times_in[3] - times_in[2] == pytest.approx(0.12)


@pytest.mark.parametrize("suffix", [".mov", ".webm"])
def test_transparent_video_has_alpha_matching_matte(tmp_path, talking_frames, suffix, segmenter):
    src = write_video(tmp_path / "in.mp4", talking_frames[:6], fps=25, audio=False)
    dst = tmp_path / f"out{suffix}"
    process_video(src, dst, background="transparent", quiet=True)
    decoded_in = [f.image for f in VideoReader(src)]
    pipe = Pipeline(background="matte", segmenter=segmenter)
    mattes = [m for _, m, _ in pipe.stream(decoded_in)]
    with av.open(str(dst)) as c:
        st = c.streams.video[0]
        if suffix == ".webm":  # VP9 alpha lives in side data: only libvpx decodes it
            ctx = av.CodecContext.create("libvpx-vp9", "r")
            frames = [f for p in c.demux(st) if p.size for f in ctx.decode(p)] + list(ctx.decode(None))
        else:
            frames = list(c.decode(st))
        rgba = [f.to_ndarray(format="rgba") for f in frames]
    assert len(rgba) == len(mattes)
    for out, m in zip(rgba, mattes):
        alpha = out[..., 3].astype(np.float32) / 255
        assert alpha.min() < 0.05 and alpha.max() > 0.95  # real transparency and a real person
        assert np.abs(alpha - m).mean() < 0.03
