"""Composite evaluation and the synthetic sets, on real portraits and real backgrounds."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from PIL import Image

from backdrop import Pipeline, PipelineOptions
from backdrop.cli import main
from backdrop.compose.composite import blend
from backdrop.evaluate import (NEW_BACKGROUNDS, WORST_PANEL_HEIGHT, composite_cases, evaluate_composite,
                               evaluate_composite_cases, evaluate_images, evaluate_sequence, green_screen_set,
                               looks_like_frames, read_truth, sliding_clip, write_green_screen_set,
                               write_sliding_clip)
from backdrop.evaluate.sources import fit_background, load_backgrounds
from backdrop.metrics import composite_error, edge_band
from backdrop.models.base import Segmenter

from conftest import shared_path

N = 3  # portraits per test: enough to average, few enough to stay fast


def soft_dirs():
    root = shared_path("portraits-soft")
    return root / "images", root / "masks"


def digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()


class _Spec:
    aspect = 1.0

    def preprocess(self, rgb):
        return rgb

    def postprocess(self, y):
        return y


class TableSegmenter(Segmenter):
    """A stand-in model that answers a known matte for each known input frame (by its bytes), at the
    frame's size: the raw path then hands it to the stages unchanged."""

    spec = _Spec()

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table

    def run(self, x):
        return self.table[digest(x)]


class TrueColoursPipeline:
    """A Pipeline stand-in with perfect matte *and* colours: composites the true F with the true alpha."""

    def __init__(self, cases, corrupt=None):
        self.cases = {digest(c.image): c for c in cases}
        self.background = None
        self.options = None
        self.corrupt = corrupt

    def reset(self):
        pass

    def stream(self, items):
        for image in items:
            c = self.cases[digest(image)]
            bg = self.background.render(0, image, c.alpha)
            out = blend(c.foreground, bg, c.alpha)
            if self.corrupt is not None:
                out = self.corrupt(out, c.alpha)
            yield image, c.alpha, out


@pytest.fixture(scope="module")
def cases():
    images, masks = soft_dirs()
    return list(composite_cases(shared_path("backgrounds"), images, masks, limit=N))


def truth_pipeline(cases, blur: float = 0.0, decontaminate: bool = True) -> Pipeline:
    table = {digest(c.image): (cv2.GaussianBlur(c.alpha, (0, 0), blur) if blur else c.alpha) for c in cases}
    opts = replace(PipelineOptions.raw(), decontaminate=decontaminate, quiet=True)
    return Pipeline(background="matte", options=opts, segmenter=TableSegmenter(table))


def test_edge_band_is_the_soft_truth_dilated_3px():
    a = np.zeros((60, 80), np.float32)
    a[:, 40:] = 1.0
    a[:, 30:40] = np.linspace(0, 1, 12, dtype=np.float32)[1:11]  # a soft ramp, columns 30..39
    band = edge_band(a)
    cols = np.flatnonzero(band[30])
    assert cols.min() == 27 and cols.max() == 42  # 30..39 soft, +-3 px
    assert not band[:, :26].any() and not band[:, 44:].any()
    hard = (np.arange(80)[None, :] >= 40).repeat(60, 0).astype(np.float32)
    cols = np.flatnonzero(edge_band(hard)[30])  # a binary step has a band too: 39|40, +-3 px
    assert cols.min() == 36 and cols.max() == 43
    assert np.isnan(composite_error(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.uint8),
                                    np.zeros((4, 4), bool)))


def test_cases_are_real_people_over_real_backgrounds(cases):
    bgs = load_backgrounds(shared_path("backgrounds"))
    for i, c in enumerate(cases):
        assert c.old_background == bgs[i % len(bgs)][0]  # cycled in name order
        old = fit_background(bgs[i % len(bgs)][1], *c.image.shape[:2])
        out = c.alpha < 0.01
        assert np.abs(c.image[out].astype(int) - old[out]).max() <= 3  # the old background, where no person
        assert np.mean(edge_band(c.alpha)) > 0.03  # soft truth: a real band


def test_perfect_matte_and_colours_score_zero(cases):
    r = evaluate_composite_cases(cases, pipeline=TrueColoursPipeline(cases))
    s = r.summary
    assert s["mad"] == 0 and s["iou"] == 1
    for c in NEW_BACKGROUNDS:
        assert s[f"{c}_band"] < 0.01 and s[f"{c}_frame"] < 0.01
    assert s["new_backgrounds"] == {"light": "#f0f0f0", "dark": "#101010"}
    assert {"light_band", "dark_band", "light_frame", "dark_frame"} <= set(r.items[0])


def test_band_error_counts_only_the_band(cases):
    def outside(out, alpha):  # spoil every pixel outside the band
        out = out.copy()
        out[~edge_band(alpha)] = 255 - out[~edge_band(alpha)]
        return out

    def inside(out, alpha):
        out = out.copy()
        out[edge_band(alpha)] = 255 - out[edge_band(alpha)]
        return out

    s = evaluate_composite_cases(cases, pipeline=TrueColoursPipeline(cases, outside)).summary
    assert s["dark_band"] < 0.01 and s["light_band"] < 0.01 and s["dark_frame"] > 50
    s = evaluate_composite_cases(cases, pipeline=TrueColoursPipeline(cases, inside)).summary
    assert s["dark_band"] > 50 and s["light_band"] > 50
    assert s["dark_frame"] == pytest.approx(s["dark_band"] * s["band_share"], rel=0.02)


def test_real_pipeline_perfect_matte_beats_blurred_truth(cases):
    perfect = evaluate_composite_cases(cases, pipeline=truth_pipeline(cases)).summary
    blurred = evaluate_composite_cases(cases, pipeline=truth_pipeline(cases, blur=3)).summary
    halo = evaluate_composite_cases(cases, pipeline=truth_pipeline(cases, decontaminate=False)).summary
    assert perfect["mad"] == 0 and blurred["mad"] > 3
    for c in ("light", "dark"):
        # the residual of a perfect matte is the colour estimate (decontamination) alone
        assert perfect[f"{c}_band"] < 5
        assert blurred[f"{c}_band"] > 1.8 * perfect[f"{c}_band"]
        # without decontamination the old background shows through the soft band: a halo
        assert halo[f"{c}_band"] > 1.5 * perfect[f"{c}_band"]
        assert perfect[f"{c}_frame"] < perfect[f"{c}_band"]


def test_cli_composite_json_and_pictures(tmp_path, capsys):
    images, masks = soft_dirs()
    out = tmp_path / "worst"
    rc = main(["eval", "--composite", str(shared_path("backgrounds")), str(images), str(masks), "--limit", "2",
               "--json", "--worst", "1", "--out", str(out), "--raw", "-q"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "composite" and data["summary"]["count"] == 2
    for k in ("mad", "mse", "grad", "conn", "light_frame", "light_band", "dark_frame", "dark_band"):
        assert data["summary"][k] > 0
    assert data["summary"]["dark_band"] > data["summary"]["dark_frame"]
    pics = sorted(out.glob("*.png"))
    assert len(pics) == 1 and (out / "report.json").is_file()
    w, h = Image.open(pics[0]).size
    side = min(512, WORST_PANEL_HEIGHT)
    assert (w, h) == (4 * side + 3 * 4, side + 40)  # input | truth composite | ours | error, captioned
    assert main(["eval", "--composite", str(shared_path("backgrounds")), str(images)]) == 2
    assert main(["eval", str(images), str(masks), "--foreground", "photo"]) == 2


def test_photo_foreground_option():
    images, masks = soft_dirs()
    photo_cases = list(composite_cases(shared_path("backgrounds"), images, masks, foreground="photo", limit=1))
    photo = np.asarray(Image.open(sorted(images.glob("*.png"), key=lambda p: p.name.lower())[0]).convert("RGB"))
    assert np.array_equal(photo_cases[0].foreground, photo)  # F is the photo itself
    r = evaluate_composite(shared_path("backgrounds"), images, masks, foreground="photo", limit=1,
                           pipeline=truth_pipeline(photo_cases))
    assert r.summary["foreground"] == "photo" and r.summary["count"] == 1 and r.summary["mad"] == 0


@pytest.fixture(scope="module")
def clip():
    images, masks = soft_dirs()
    return sliding_clip(images, masks, shared_path("backgrounds"), frames=16, size=(320, 180), seed=3)


def test_sliding_clip_moves_over_a_clean_plate(clip, tmp_path):
    assert len(clip.frames) == len(clip.alphas) == 16 and clip.frames[0].shape == (180, 320, 3)
    xs = [float((a.sum(0) * np.arange(320)).sum() / a.sum()) for a in clip.alphas]  # centre of mass
    steps = np.diff(xs)
    assert abs(xs[-1] - xs[0]) > 100 and (np.all(steps <= 0) or np.all(steps >= 0))  # one way, far
    assert sum(np.abs(a - b).max() > 0.5 for a, b in zip(clip.alphas, clip.alphas[1:])) >= 12
    assert any(0 < v < 1 for v in np.unique(clip.alphas[5]))  # soft truth
    bg = dict(load_backgrounds(shared_path("backgrounds")))[clip.background]
    assert np.array_equal(clip.plate, fit_background(bg, 180, 320))  # the background alone: no person
    for frame, a in zip(clip.frames, clip.alphas):
        diff = np.abs(frame.astype(int) - clip.plate).max(axis=2)
        assert diff[a == 0].mean() < 2.0  # only sensor noise where nobody is
        assert diff[a == 1].mean() > 10  # the person covers the plate
    again = sliding_clip(*soft_dirs(), shared_path("backgrounds"), frames=16, size=(320, 180), seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(clip.frames, again.frames))  # seeded
    paths = write_sliding_clip(clip, tmp_path / "clip")
    assert looks_like_frames(paths["frames"]) and paths["plate"].is_file()
    back, soft = read_truth(paths["masks"] / "00007.png")
    assert soft and np.array_equal(back, clip.alphas[7])  # the written truth is exact
    table = {digest(f): a for f, a in zip(clip.frames, clip.alphas)}
    pipe = Pipeline(background="matte", options=PipelineOptions.raw(), segmenter=TableSegmenter(table))
    s = evaluate_sequence(paths["frames"], paths["masks"], pipeline=pipe).summary
    assert s["count"] == 16 and s["mad"] == 0 and s["dtssd"] == 0


def green_excess(rgb: np.ndarray, mask: np.ndarray) -> float:
    """How much greener than the mean of red and blue the pixels of ``mask`` are, in 8-bit levels."""
    px = rgb[mask].astype(float)
    return float(np.mean(px[:, 1] - px[:, [0, 2]].mean(axis=1)))


def test_green_screen_set(tmp_path):
    gs = green_screen_set(*soft_dirs(), limit=2, seed=1)
    for it in gs.items:
        f = it.image.astype(int)
        bg = it.alpha == 0
        r, g, b = f[..., 0][bg], f[..., 1][bg], f[..., 2][bg]
        assert np.mean((g > r + 40) & (g > b + 40)) > 0.99  # the screen is green
        lum = it.screen[..., 1][bg].astype(float)
        assert lum.max() - lum.min() > 30  # unevenly lit
        assert 1.0 < np.abs(f - blend(it.spilled, it.screen, it.alpha)).mean() < 3.0  # sensor noise
        soft = (it.alpha > 0.1) & (it.alpha < 0.9)
        deep = cv2.erode((it.alpha >= 1).astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
        edge = green_excess(it.spilled, soft) - green_excess(it.foreground, soft)
        body = green_excess(it.spilled, deep) - green_excess(it.foreground, deep)
        assert edge > 20  # green spill on the edge
        assert 0 < body < 0.4 * edge  # and a little on the whole person
        assert it.spill[soft].mean() > 0.3 and it.spill[deep].mean() == pytest.approx(0.05, abs=0.01)
    paths = write_green_screen_set(gs, tmp_path / "gs")
    table = {digest(it.image): it.alpha for it in gs.items}
    pipe = Pipeline(background="matte", options=PipelineOptions.raw(), segmenter=TableSegmenter(table))
    s = evaluate_images(paths["images"], paths["masks"], pipeline=pipe).summary
    assert s["count"] == 2 and s["mad"] == 0  # the written set is its exact truth
    again = green_screen_set(*soft_dirs(), limit=2, seed=1)
    assert np.array_equal(again.items[1].image, gs.items[1].image)
    assert len(gs.cases()) == 2 and np.array_equal(gs.cases()[0].foreground, gs.items[0].foreground)
