"""File jobs in the decoder's YUV 4:2:0 planes (planar.py, the planar fused pass) on real frames.

The planar path must give what the RGB path gives (the same matte, the same blend, only the
colour conversions moved), pass the person's interior through untouched and the background as
rendered, and its threads (``Pipeline.stream(defer=True)``) must not change a single pixel.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from backdrop import Pipeline
from backdrop.compose.regions import BAND, EXT, INT
from backdrop.io.video import VideoReader, VideoWriter
from backdrop.planar import Planar, Y_TO_GREY, yuv_correction
from backdrop.resize import downscale

from conftest import shared_path


def planar_frames(name: str, n: int, size: tuple[int, int] | None = None) -> list[Planar]:
    out = []
    with av.open(str(shared_path("clips", name))) as c:
        for f in c.decode(video=0):
            if len(out) == n:
                break
            f = f.reformat(width=size[0], height=size[1], format="yuv420p") if size else f
            out.append(Planar(f.to_ndarray(), f.width, f.height))
    return out


def test_planar_conversions_match_the_rgb_ones_on_a_real_frame():
    with av.open(str(shared_path("clips", "talking-portrait-720x1280.mp4"))) as c:
        vf = next(iter(c.decode(video=0)))
        sws = vf.to_ndarray(format="rgb24")
        p = Planar(vf.to_ndarray(), vf.width, vf.height)
    rgb = p.to_rgb()
    assert rgb.shape == sws.shape and np.abs(rgb.astype(np.int16) - sws).mean() < 2.0  # chroma filters differ
    box = (101, 203, 577, 999)  # odd edges: converted from the even box around it, then cut
    assert np.array_equal(p.crop_rgb(box), rgb[203:999, 101:577])
    small = p.small_rgb(288, 512)
    assert small.shape == (512, 288, 3)
    assert np.abs(small.astype(np.int16) - downscale(rgb, 288, 512)).mean() < 2.0
    grey = cv2.LUT(p.y, Y_TO_GREY)
    assert np.abs(grey.astype(np.int16) - cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).mean() < 0.5
    back = Planar.from_rgb(rgb)
    assert np.abs(back.data.astype(np.int16) - p.data).mean() < 1.0


def test_a_colour_correction_in_yuv_is_the_rgb_one():
    rng = np.random.default_rng(3)
    with av.open(str(shared_path("clips", "office-desk-960x540.mp4"))) as c:
        p = Planar(next(iter(c.decode(video=0))).to_ndarray())
    rgb = p.to_rgb()
    corr = np.zeros((540, 960, 3), np.float32)
    corr[100:300, 200:600] = rng.normal(0, 12, 3)  # a smooth shift of one region's colour
    want = Planar.from_rgb(cv2.add(rgb, corr, dtype=cv2.CV_8U))
    dy = np.ascontiguousarray(yuv_correction([corr])[..., 0])
    y = cv2.add(p.y, dy, dtype=cv2.CV_8U)
    moved = rgb.astype(np.float32) + corr
    # where RGB saturates it clips each channel and YUV does not: compare where neither clips
    fits = ((moved >= 0) & (moved <= 255)).all(axis=2)
    inside = np.zeros(fits.shape, bool)
    inside[110:290, 210:590] = True
    inside &= fits
    assert inside.sum() > 20000
    assert np.abs(y[inside].astype(np.int16) - want.y[inside]).mean() < 0.6
    assert np.abs(y[inside].astype(np.int16) - p.y[inside]).mean() > 2.0  # it did change the frame


@pytest.mark.parametrize("clip,size,background", [
    ("office-desk-960x540.mp4", (1280, 720), "backgrounds/porch-691330_1280.jpg"),
    ("talking-portrait-720x1280.mp4", None, "blur"),
])
def test_planar_fused_output_is_the_rgb_pipelines(segmenter, clip, size, background):
    if background.startswith("backgrounds/"):
        background = str(shared_path(*background.split("/")))
    frames = planar_frames(clip, 10, size)
    rgb_pipe = Pipeline(background=background, segmenter=segmenter, relight=0.0)  # relight: the unfused path
    planar_pipe = Pipeline(background=background, segmenter=segmenter, relight=0.0)
    want = [o for _, _, o in rgb_pipe.stream([p.to_rgb() for p in frames], mattes=True)]
    diffs, sure = [], []
    for src, (_, _, out) in zip(frames, planar_pipe.stream(frames, mattes=False)):
        assert isinstance(out, Planar) and out.size == src.size
        cls, tiles = planar_pipe.fused.last_classes, planar_pipe.fused.tiles
        px = np.repeat(np.repeat(cls, tiles.th, 0), tiles.tw, 1)
        assert np.array_equal(out.y[px == INT], src.y[px == INT])  # the person's interior, untouched
        if background != "blur":  # the picture, converted once, where no person is
            w, h = src.size
            bg = Planar.from_rgb(planar_pipe.background.render(0, np.zeros((h, w, 3), np.uint8), None))
            assert np.array_equal(out.y[px == EXT], bg.y[px == EXT])
        diffs.append(np.abs(out.to_rgb().astype(np.int16) - want[len(diffs)]))
        sure.append((cls != BAND).mean())
    d = np.stack(diffs)
    # chroma blended at half size on the edge, and the network's input shrunk from the working-size
    # image (network_crop) instead of from the full frame: measured mean 0.86 / 0.25, p99.9 22 / 4
    assert d.mean() < 1.0 and np.percentile(d, 99.9) <= 28
    assert np.mean(sure) > 0.5


def test_deferred_outputs_made_on_another_thread_are_identical(segmenter):
    frames = planar_frames("office-desk-960x540.mp4", 16, (1280, 720))
    background = str(shared_path("backgrounds", "porch-691330_1280.jpg"))
    want = [o.data.copy() for _, _, o in Pipeline(background=background, segmenter=segmenter, relight=0.0)
            .stream(frames, mattes=False)]
    pipe = Pipeline(background=background, segmenter=segmenter, relight=0.0)
    made, jobs = [], []
    worker_done = threading.Event()

    def worker():
        while True:
            job = jobs.pop(0) if jobs else None
            if job is None:
                if worker_done.is_set() and not jobs:
                    return
                threading.Event().wait(0.001)
                continue
            made.append(job().data.copy())

    t = threading.Thread(target=worker)
    t.start()
    for _, matte, job in pipe.stream(frames, mattes=False, defer=True):
        assert matte is None and callable(job)
        jobs.append(job)
    worker_done.set()
    t.join()
    assert len(made) == len(want)
    assert all(np.array_equal(a, b) for a, b in zip(made, want))


def test_reader_gives_planes_only_for_limited_range_420(tmp_path):
    src = shared_path("clips", "talking-room-512x480.mp4")
    frame = next(iter(VideoReader(src, planar=True)))
    assert isinstance(frame.image, Planar) and frame.image.size == (512, 480)
    assert isinstance(next(iter(VideoReader(src))).image, np.ndarray)  # RGB unless asked
    path = tmp_path / "444.mp4"
    with av.open(str(path), "w") as out:  # a 4:4:4 file: the encoder wants 4:2:0, so RGB it is
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv444p"
        for _ in range(3):
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 90, np.uint8), format="rgb24")))
        out.mux(s.encode(None))
    img = next(iter(VideoReader(path, planar=True))).image
    assert isinstance(img, np.ndarray) and img.shape == (48, 64, 3)


def test_writer_takes_planes_without_conversion(tmp_path):
    with av.open(str(shared_path("clips", "office-desk-960x540.mp4"))) as c:
        p = Planar(next(iter(c.decode(video=0))).to_ndarray())
    w = VideoWriter(tmp_path / "o.mp4", width=960, height=540, rate=Fraction(25), time_base=Fraction(1, 25),
                    crf=0, preset="ultrafast")
    w.write(p, 0)
    w.close()
    back = next(iter(VideoReader(tmp_path / "o.mp4", planar=True))).image
    assert isinstance(back, Planar) and np.array_equal(back.data, p.data)  # crf 0: lossless, no colour trip


def test_a_planar_frame_is_never_converted_whole(segmenter, monkeypatch):
    """The point of the planar path: no whole-frame RGB conversion, in the work phase (the network
    input comes from the working-size image or the crop alone) or in the fused pass."""
    frames = planar_frames("office-desk-960x540.mp4", 6, (1920, 1080))
    pipe = Pipeline(background=str(shared_path("backgrounds", "porch-691330_1280.jpg")), segmenter=segmenter,
                    relight=0.0)  # relight looks at the new background before the blend: the unfused path

    def whole(self):
        raise AssertionError("the whole frame was converted to RGB")

    monkeypatch.setattr(Planar, "to_rgb", whole)
    outs = [o for _, _, o in pipe.stream(frames, mattes=False)]
    assert all(isinstance(o, Planar) for o in outs) and pipe.network.inferences >= 1
