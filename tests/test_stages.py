"""Matte stages on constructed cases with known answers, and on real shared frames."""

from __future__ import annotations

import glob

import cv2
import numpy as np
import pytest

from backdrop import Pipeline, PipelineOptions
from backdrop.compose.foreground import decontaminate
from backdrop.compose.backgrounds.presenter import PresenterBackground
from backdrop.io.image import read_image
from backdrop.stages.cleanup import cleanup
from backdrop.stages.refine import fast_guided_upsample
from backdrop.stages.still import StillDetector
from backdrop.stages.delay import one_frame_delay
from backdrop.stages.temporal import MotionFusion
from conftest import shared_path


def disc(h, w, cx, cy, r):
    yy, xx = np.mgrid[:h, :w]
    return (((xx - cx) ** 2 + (yy - cy) ** 2) <= r * r).astype(np.float32)


def test_cleanup_drops_stray_blob_keeps_second_person_fills_hole():
    m = disc(200, 300, 80, 110, 50) + disc(200, 300, 220, 110, 45)  # two people
    m[108:112, 78:82] = 0  # a pinhole in the first
    m += disc(200, 300, 150, 20, 3)  # a stray speck
    out = cleanup(np.clip(m, 0, 1))
    assert out[110, 80] > 0.99 and out[110, 220] > 0.99  # both people kept
    assert out[20, 150] < 0.01  # the speck is gone
    assert out[110, 80] == 1.0  # the hole is filled


def test_still_sequence_is_skipped_moving_one_is_not():
    grey = np.random.default_rng(0).uniform(0, 255, (120, 160)).astype(np.float32)
    m = disc(120, 160, 80, 60, 30)
    d = StillDetector()
    d.observe(grey, m)
    assert d.should_skip(grey + np.random.default_rng(1).normal(0, 0.5, grey.shape).astype(np.float32))
    moved = np.roll(grey, 6, axis=1)
    d2 = StillDetector()
    d2.observe(grey, m)
    assert not d2.should_skip(moved)


def test_face_interior_change_does_not_count_as_motion():
    grey = np.full((120, 160), 100, np.float32)
    m = disc(120, 160, 80, 60, 40)
    d = StillDetector()
    d.observe(grey, m)
    talking = grey.copy()
    talking[50:70, 70:90] = 200  # the mouth moves, deep inside the person
    assert d.should_skip(talking)


def test_one_frame_flicker_is_removed():
    a = np.zeros((5, 5), np.float32)
    b = a.copy()
    b[2, 2] = 1.0  # a one-frame, one-pixel flicker
    out = one_frame_delay(a, b, a)
    assert out[2, 2] == 0.0
    real = np.ones((5, 5), np.float32)  # a real change persists: left alone
    assert one_frame_delay(a, real, real)[2, 2] == 1.0


def test_motion_fusion_steadies_still_areas_and_follows_motion():
    f = MotionFusion()
    grey = np.full((50, 50), 120, np.float32)
    m0 = np.zeros((50, 50), np.float32)
    f(grey, m0)
    jitter = m0.copy()
    jitter[:, 25] = 1.0  # edge noise with no image change
    assert f(grey, jitter)[:, 25].max() < 0.5
    moved = grey.copy()
    moved[:, 20:30] = 250  # the image really changed here
    assert f(moved, jitter)[:, 25].min() > 0.9


def test_guided_refinement_snaps_edge_to_image():
    h, w = 200, 200
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, 103:] = 220  # the true edge at x=103
    blurry = np.zeros((50, 50), np.float32)
    blurry[:, 26:] = 1
    blurry = cv2.GaussianBlur(blurry, (0, 0), 1.0)  # a soft low-res matte, edge 1 px off at full res
    small = cv2.resize(frame, (50, 50), interpolation=cv2.INTER_AREA)
    out = fast_guided_upsample(frame, small, blurry)
    bil = cv2.resize(blurry, (w, h), interpolation=cv2.INTER_LINEAR)
    truth = (np.arange(w) >= 103).astype(np.float32)
    assert np.abs(out[100] - truth).mean() < 0.75 * np.abs(bil[100] - truth).mean()
    assert int(np.argmax(out[100] > 0.5)) == 103  # the edge sits on the image's edge


def test_decontamination_removes_old_background_colour():
    h, w = 64, 128
    ramp = np.clip((np.arange(w, dtype=np.float32) - 58) / 12, 0, 1)  # a 12-px soft hair band
    alpha = np.tile(ramp, (h, 1))
    F, B = np.array([200, 40, 40], np.float32), np.array([20, 20, 230], np.float32)  # red hair, blue room
    frame = (alpha[..., None] * F + (1 - alpha[..., None]) * B).astype(np.uint8)
    out = decontaminate(frame, frame, alpha, alpha)
    band = (alpha > 0.3) & (alpha < 0.9)
    assert out[band][:, 2].mean() < 0.5 * frame[band][:, 2].mean()  # the blue is mostly gone


def test_presenter_puts_person_in_a_corner(tmp_path):
    slide = np.full((90, 160, 3), 230, np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), slide)
    bg = PresenterBackground(tmp_path, "corner")
    alpha = disc(240, 320, 160, 150, 60)
    m = bg.person_transform(alpha)
    moved = cv2.warpAffine(alpha, m, (320, 240))
    ys, xs = np.nonzero(moved > 0.5)
    assert xs.min() > 160 and ys.max() >= 230  # right half, standing on the bottom edge
    assert moved[100:140, 140:180].max() == 0  # the slide's centre stays visible


@pytest.fixture(scope="module")
def hike():
    frames = sorted(glob.glob(str(shared_path("clips-gt", "hike", "frames") / "*.jpg")))[:40]
    masks = sorted(glob.glob(str(shared_path("clips-gt", "hike", "masks") / "*.png")))[:40]
    return [read_image(f) for f in frames], [read_image(m)[..., 0] > 127 for m in masks]


def _iou(mattes, gts):
    return float(np.mean([((m > 0.5) & g).sum() / max(1, ((m > 0.5) | g).sum()) for m, g in zip(mattes, gts)]))


def test_roi_beats_full_frame_on_small_person(hike, segmenter):
    frames, gts = hike
    full = Pipeline(background="matte", segmenter=segmenter, options=PipelineOptions(roi=False))
    roi = Pipeline(background="matte", segmenter=segmenter, options=PipelineOptions(roi=True))
    iou_full = _iou([m for _, m, _ in full.stream(frames)], gts)
    iou_roi = _iou([m for _, m, _ in roi.stream(frames)], gts)
    assert iou_roi > iou_full + 0.02, (iou_roi, iou_full)


def test_default_pipeline_less_flicker_than_raw_on_real_clip(segmenter):
    from backdrop.io.video import VideoReader

    frames = []
    for f in VideoReader(shared_path("clips", "talking-indoor-512.mp4")):
        frames.append(f.image)
        if len(frames) == 60:
            break

    def flicker(opts):
        p = Pipeline(background="matte", segmenter=segmenter, options=opts)
        ms = [m for _, m, _ in p.stream(frames)]
        vals = []
        for t in range(1, len(frames)):
            g0 = cv2.cvtColor(frames[t - 1], cv2.COLOR_RGB2GRAY).astype(np.float32)
            g1 = cv2.cvtColor(frames[t], cv2.COLOR_RGB2GRAY).astype(np.float32)
            still = np.abs(g1 - g0) < 4
            vals.append(np.abs(ms[t] - ms[t - 1])[still].mean())
        return float(np.mean(vals)), p.stats()

    raw, _ = flicker(PipelineOptions.raw())
    default, stats = flicker(PipelineOptions())
    assert default < 0.75 * raw, (default, raw)
    assert stats["skipped_fraction"] > 0.3  # a talking head is mostly still at the edge


def test_pdf_slides_render_and_advance(tmp_path):
    from PIL import Image

    pages = [Image.new("RGB", (320, 180), c) for c in ((250, 0, 0), (0, 0, 250))]
    pdf = tmp_path / "talk.pdf"
    pages[0].save(pdf, save_all=True, append_images=pages[1:])
    bg = PresenterBackground(pdf, "left", slide_times=[0.0, 1.0], fps=10)
    frame = np.zeros((90, 160, 3), np.uint8)
    alpha = np.zeros((90, 160), np.float32)
    first, later = bg.render(0, frame, alpha), bg.render(15, frame, alpha)  # t = 0 s and 1.5 s
    assert first[45, 80, 0] > 200 and later[45, 80, 2] > 200
    bg2 = PresenterBackground(pdf, "corner")
    assert bg2.advance() == 1 and bg2.advance() == 1  # live: next slide, clamped at the end


def test_high_quality_refinement_lowers_matting_error(portrait_pairs, segmenter):
    def mad(refine):
        p = Pipeline(background="matte", segmenter=segmenter, options=PipelineOptions(refine=refine))
        errs = []
        for _, img, gt in portrait_pairs[:4]:
            p.reset()
            errs.append(np.abs(p.matte(img) - gt).mean())
        return float(np.mean(errs))

    assert mad("high") < mad("guided")
