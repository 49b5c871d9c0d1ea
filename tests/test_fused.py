"""The fused full-resolution pass (engine/fused.py) against the unfused reference, on real frames.

The reference is the same pipeline asked for its mattes (``stream(mattes=True)``: refine, steady,
decontamination and the blend each over the whole frame); the fused pass skips the sure
background and the sure interior and computes only the band. Band pixels must be identical,
everything else (and the band once steady has history: it keeps 0 or 1 where
the matte was sure) within one level.
"""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from backdrop import Pipeline
from backdrop.compose.regions import BAND, EXT, INT, Tiles, crop_resize

from conftest import shared_path


@pytest.fixture(autouse=True)
def fuse_every_size(monkeypatch, request):
    """The equivalence tests fuse at every size (the default gate keeps small frames unfused)."""
    if "default_gate" not in request.keywords:
        monkeypatch.setattr("backdrop.engine.fused.FUSE_FROM_PIXELS", 0)


def clip_frames(name: str, n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    out = []
    with av.open(str(shared_path("clips", name))) as c:
        for f in c.decode(video=0):
            if len(out) == n:
                break
            out.append((f.reformat(width=size[0], height=size[1]) if size else f).to_ndarray(format="rgb24"))
    return out


def compare(frames, background, segmenter, **options):
    options = {"relight": 0.0, **options}  # relight looks at the new background: it keeps the unfused path
    ref = Pipeline(background=background, segmenter=segmenter, **options)
    fused = Pipeline(background=background, segmenter=segmenter, **options)
    want = [o for _, _, o in ref.stream(frames, mattes=True)]
    got, classes = [], []
    for _, matte, o in fused.stream(frames, mattes=False):
        assert matte is None
        got.append(o)
        classes.append(fused.fused.last_classes.copy())
    return want, got, classes, fused.fused.tiles


@pytest.mark.parametrize("clip,size,background", [
    ("office-desk-960x540.mp4", (1280, 720), "blur"),
    ("office-desk-960x540.mp4", (1920, 1080), "#00b140"),
    ("talking-portrait-720x1280.mp4", None, "backgrounds/porch-691330_1280.jpg"),
])
def test_fused_composite_equals_unfused_on_real_clips(segmenter, clip, size, background):
    if background.startswith("backgrounds/"):
        background = str(shared_path(*background.split("/")))
    want, got, classes, tiles = compare(clip_frames(clip, 12, size), background, segmenter)
    diffs = []
    for i, (w, g, cls) in enumerate(zip(want, got, classes)):
        assert g.shape == w.shape and g.dtype == np.uint8
        d = np.abs(w.astype(np.int16) - g).max(axis=2)
        band = np.repeat(np.repeat(cls == BAND, tiles.th, 0), tiles.tw, 1)
        if i == 0:  # the band is the same computation (later the kept matte is 0/1 where it was sure)
            assert d[band].max(initial=0) == 0
        diffs.append(d)
    d = np.stack(diffs)
    assert d.max() <= 1 and d.mean() < 0.01
    sure = np.mean([(c != BAND).mean() for c in classes])
    assert sure > 0.5  # most of the frame was not computed at full size


def test_fused_on_portraits_with_despill_and_no_steady(segmenter, portrait_pairs):
    frames = [img for _, img, _ in portrait_pairs[:4]]
    for opts in ({}, {"temporal": 0.0}, {"decontaminate": False}):
        for frame in frames:
            want, got, _, _ = compare([frame], "#2040ff", segmenter, **opts)
            d = np.abs(want[0].astype(np.int16) - got[0])
            assert d.max() <= 1 and d.mean() < 0.01, opts


def test_stages_that_read_the_full_matte_keep_the_unfused_path(segmenter):
    frames = clip_frames("office-desk-960x540.mp4", 3)
    for opts, bg in (({"light_wrap": 0.5}, "blur"), ({"touch_up": 0.5}, "blur"), ({}, "transparent"),
                     ({"refine": "bilinear"}, "blur")):
        p = Pipeline(background=bg, segmenter=segmenter, **opts)
        list(p.stream(frames, mattes=False))
        assert p.fused.last_classes is None, opts


def test_relight_takes_the_fused_pass_only_where_it_changes_nothing(segmenter):
    """A well-lit person: relight is idle, every frame fused and the output identical to relight 0
    (a 720p file job 0.26-0.27 of a bare transcode unfused, 0.37-0.39 fused). The same room dark
    and noisy: the lift is on, the frames go the unfused way and the person comes out brighter."""
    frames = clip_frames("office-desk-960x540.mp4", 3)
    on = Pipeline(background="blur", segmenter=segmenter)
    off = Pipeline(background="blur", relight=0.0, segmenter=segmenter)
    got = [o for _, _, o in on.stream(frames, mattes=False)]
    want = [o for _, _, o in off.stream(frames, mattes=False)]
    assert on.fused.last_classes is not None
    assert all(np.array_equal(a, b) for a, b in zip(got, want))
    rng = np.random.default_rng(0)
    dark = [np.clip(f * 0.2 + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8) for f in frames]
    on = Pipeline(background="blur", segmenter=segmenter)
    off = Pipeline(background="blur", relight=0.0, segmenter=segmenter)
    got = [o for _, _, o in on.stream(dark, mattes=False)]
    want = [o for _, _, o in off.stream(dark, mattes=False)]
    assert on.fused.last_classes is None
    assert got[-1].mean() > want[-1].mean() + 2


def test_crop_resize_is_the_crop_of_the_whole_resize():
    rng = np.random.default_rng(1)
    for grid, size in (((288, 512), (1280, 720)), ((288, 512), (3840, 2160)), ((144, 256), (1920, 1080)),
                       ((288, 512), (854, 480)), ((512, 288), (720, 1280))):
        for src in (rng.random(grid, np.float32), (rng.random((*grid, 3)) * 300 - 150).astype(np.int16)):
            whole = cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)
            t = Tiles(size, grid)
            for _ in range(4):
                x0, y0 = rng.integers(0, t.nx), rng.integers(0, t.ny)
                x1, y1 = rng.integers(x0 + 1, t.nx + 1), rng.integers(y0 + 1, t.ny + 1)
                if src.shape[:2] != grid:
                    continue
                rect = (x0 * t.tw, y0 * t.th, x1 * t.tw, y1 * t.th)
                np.testing.assert_array_equal(crop_resize(src, size, rect), whole[rect[1]:rect[3], rect[0]:rect[2]])


def test_tile_runs_cover_without_overlap():
    t = Tiles((1280, 720), (288, 512))
    rng = np.random.default_rng(2)
    mask = rng.random(t.shape) < 0.1
    cover = np.zeros((720, 1280), np.int32)
    for rows, cols in t.runs(mask, strip=7, gap=3, k=(2, 3)):
        cover[rows, cols] += 1
    assert cover.max() == 1
    need = np.repeat(np.repeat(mask, t.th, 0), t.tw, 1)
    assert cover[need].min() == 1
    assert EXT != INT


@pytest.mark.default_gate
def test_small_frames_keep_the_unfused_path_and_large_ones_fuse(segmenter):
    """480p is faster unfused (measured, FUSE_FROM_PIXELS); 720p and up take the fused pass."""
    for size, fused in (((854, 480), False), ((1280, 720), True), ((1920, 1080), True)):
        p = Pipeline(background="blur", segmenter=segmenter, relight=0.0)
        list(p.stream(clip_frames("office-desk-960x540.mp4", 2, size), mattes=False))
        assert (p.fused.last_classes is not None) is fused, size
