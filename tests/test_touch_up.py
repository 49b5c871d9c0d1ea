"""Touch-up (skin smoothing) on real pixels: the shared portraits and their true soft alpha.

The face box comes from ``backdrop.metrics.texture.face_box`` (no face detector: OpenCV 5 ships
no Haar cascade): the largest smooth, skin-coloured region inside the truth. Texture and edges
are after / before ratios from ``texture_ratios`` (1 = unchanged). Measured values are in
docs/quality.md ("Touch-up"); the bounds here sit a little outside them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backdrop import Pipeline
from backdrop.metrics.texture import face_box, texture_ratios
from backdrop.stages.touch_up import bilateral, skin_weight, touch_up

from conftest import load_pairs

TEXTURED = ("model-2911329_1920", "brazil-1368806_1920", "young-507297_1920")  # pores, stubble, glasses


@pytest.fixture(scope="module")
def faces():
    out = {}
    for name, img, truth in load_pairs("portraits-soft"):
        box = face_box(img, truth)
        if box is not None:
            out[name] = (img, truth, box)
    return out


def test_face_boxes_are_found(faces):
    assert len(faces) >= 15, sorted(faces)
    for img, _, (x, y, w, h) in faces.values():  # a face: in the picture's middle half, face-shaped
        assert img.shape[1] * 0.15 < x + w / 2 < img.shape[1] * 0.85 and 0.8 <= h / w <= 1.8


@pytest.mark.parametrize("name", TEXTURED)
def test_strength_one_smooths_skin_and_keeps_edges(faces, name):
    img, truth, box = faces[name]
    r = texture_ratios(img, touch_up(img, truth, 1.0), truth, box)
    assert r["fine"] < 0.55, r  # pores and grain: about halved (measured 0.33-0.42)
    assert r["mid"] < 0.93, r  # blemishes, uneven tone (soft shading stays; measured 0.83-0.91)
    assert 0.98 < r["edges"] < 1.02 and 0.98 < r["eyes"] < 1.02, r  # eyes, brows, lips: kept
    assert r["hair_edges"] > 0.98, r


def test_every_face_keeps_its_edges(faces):
    rows = [texture_ratios(img, touch_up(img, truth, 1.0), truth, box) for img, truth, box in faces.values()]
    assert np.median([r["fine"] for r in rows]) < 0.65  # measured 0.565
    assert all(r["fine"] < 0.9 for r in rows)  # every face smoother (the least: 0.85, already retouched)
    for r in rows:  # eyes, eyebrows, lips, nostrils: within 2% on every face (measured 0.994-1.006)
        assert 0.98 < r["edges"] < 1.02 and 0.98 < r["eyes"] < 1.02, r
    assert np.median([r["hair_edges"] for r in rows]) > 0.98  # measured 0.991 (worst 0.918: orange hair)


def test_strength_scales_the_effect_and_zero_is_identity(faces):
    img, truth, box = faces["model-2911329_1920"]
    assert touch_up(img, truth, 0.0) is img
    fine = [texture_ratios(img, touch_up(img, truth, k), truth, box)["fine"] for k in (0.25, 0.5, 1.0)]
    assert 1.0 > fine[0] > fine[1] > fine[2], fine
    before = img.copy()
    touch_up(img, truth, 1.0)
    assert np.array_equal(img, before)  # the input is never written to


def test_only_the_person_changes(faces, segmenter):
    """Through the pipeline, with the true matte: every pixel with no person is the same as
    without touch-up (a colour and the blurred own room), and the person changed."""
    img, truth, _ = faces["model-2911329_1920"]
    for background in ("#2040ff", "blur:15"):
        plain = Pipeline(background=background, segmenter=segmenter, quiet=True)
        smooth = Pipeline(background=background, segmenter=segmenter, touch_up=1.0, quiet=True)
        assert "touch_up" in {s.spec.name for s in smooth.stages}
        a, b = plain.composite(img, truth), smooth.composite(img, truth)
        diff = np.abs(a.astype(int) - b).max(axis=-1)
        assert diff[truth == 0].max() == 0, background
        assert (diff[truth > 0.9] > 0).mean() > 0.2, background
    out = touch_up(img, truth, 1.0)
    assert np.array_equal(out[truth == 0], img[truth == 0])
    off = Pipeline(background="#2040ff", segmenter=segmenter, touch_up=0.0, quiet=True)
    assert "touch_up" not in {s.spec.name for s in off.stages}


def test_large_frames_are_processed_at_1080(faces):
    """A frame above 1080 on its short side is smoothed at 1080 and the change upsampled: the
    skin still smooths, the edges stay (this frame is upscaled, so softer per pixel than a real
    one: its edges give a little more, measured 0.935), the background is untouched."""
    img, truth, box = faces["young-507297_1920"]
    k = 1280 / 512
    big = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
    big_truth = cv2.resize(truth, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_LINEAR)
    out = touch_up(big, big_truth, 1.0)
    r = texture_ratios(big, out, big_truth, tuple(round(v * k) for v in box))
    assert r["mid"] < 0.8 and r["fine"] < 0.9 and 0.9 < r["edges"] < 1.02 and 0.9 < r["eyes"] < 1.02, r
    assert np.array_equal(out[big_truth == 0], big[big_truth == 0])


def _reference_bilateral(img: np.ndarray, sigma_colour: float, sigma_space: float = 2.5, radius: int = 2):
    """The bilateral filter as documented in stages/touch_up.py (for a port to check against)."""
    h, w = img.shape[:2]
    pad = cv2.copyMakeBorder(img, radius, radius, radius, radius, cv2.BORDER_REFLECT_101).astype(np.float64)
    centre = pad[radius:radius + h, radius:radius + w]
    num, den = np.zeros((h, w, 3)), np.zeros((h, w, 1))
    for i in range(-radius, radius + 1):
        for j in range(-radius, radius + 1):
            if i * i + j * j > radius * radius:
                continue
            q = pad[radius + i:radius + i + h, radius + j:radius + j + w]
            c = np.abs(q - centre).sum(axis=-1, keepdims=True)
            weight = np.exp(-(i * i + j * j) / (2 * sigma_space ** 2)) * np.exp(-c * c / (2 * sigma_colour ** 2))
            num += weight * q
            den += weight
    return np.clip(np.rint(num / den), 0, 255).astype(np.uint8)


def test_the_documented_bilateral_is_opencvs(faces):
    img, _, (x, y, w, h) = faces["model-2911329_1920"]
    crop = np.ascontiguousarray(img[y:y + 96, x:x + 96])
    for sigma in (30.0, 40.0):
        diff = np.abs(_reference_bilateral(crop, sigma).astype(int) - bilateral(crop, sigma))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.001


def test_skin_weight_is_the_documented_ramp():
    def rgb_of(cr: float, cb: float, y: float = 150.0) -> np.ndarray:  # OpenCV's YCrCb -> RGB
        r = y + 1.403 * (cr - 128)
        b = y + 1.773 * (cb - 128)
        g = (y - 0.299 * r - 0.114 * b) / 0.587
        return np.clip(np.rint([[[r, g, b]]]), 0, 255).astype(np.uint8)

    assert skin_weight(rgb_of(150, 110))[0, 0] == pytest.approx(1.0)  # the range's middle
    assert skin_weight(rgb_of(133, 110))[0, 0] == pytest.approx(0.5, abs=0.07)  # on a bound
    assert skin_weight(rgb_of(124, 110))[0, 0] == 0.0  # four levels and more outside
    assert skin_weight(rgb_of(150, 140))[0, 0] == 0.0
    assert skin_weight(np.full((1, 1, 3), 128, np.uint8))[0, 0] == 0.0  # grey is not skin
