"""Relight on the on-device page (gl-relight.js), in real headless Chromium as
``test_browser_local.py`` runs it: a fake camera plays a real portrait made dark and noisy (a dim
room and a webcam's gain), and what the page streams is read back.

- the person is lifted toward the photo as shot, as the Python stage lifts them, while the
  background colour stays what was picked; strength 0 is the camera's own pixels;
- a picture far cooler than a tungsten-lit person moves them toward it on the page too.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import load_pairs
from test_browser import browser_bits  # noqa: F401
from test_browser_local import session, settle, snapshot, still_y4m  # noqa: F401

pytestmark = pytest.mark.browser


def portrait(size=320):
    name, img, truth = next(p for p in load_pairs("portraits-soft") if p[0] == "girl-2122927_1280")
    k = size / img.shape[1]
    dims = (size, int(round(img.shape[0] * k / 2)) * 2)
    return (cv2.resize(img, dims, interpolation=cv2.INTER_AREA),
            cv2.resize(truth, dims, interpolation=cv2.INTER_AREA))


def dark_room(img):
    from backdrop.evaluate.perturb import perturb_person

    return perturb_person(img, "lowlight", -2.0, np.random.default_rng(0), noise=3.0)


def luma(im, where):
    return float(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[where].mean())


def test_the_page_lifts_a_dark_noisy_person_as_the_python_stage_does(session, tmp_path):  # noqa: F811
    from backdrop.compose.relight_estimate import relight_once

    srv, make = session
    photo, truth = portrait()
    dark = dark_room(photo)
    inside = cv2.erode((truth > 0.98).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    s = make(still_y4m(tmp_path / "dark.y4m", dark))
    page = s.open(f"?w={dark.shape[1]}&h={dark.shape[0]}")
    assert "relight" in page.evaluate("window.backdrop.stats().passes")
    page.evaluate("window.backdrop.setSettings({colour: '#404040', relight: 1, roi: false})")  # no tracker: faster
    settle(page, 12)
    lifted = snapshot(page)
    page.evaluate("window.backdrop.setSettings({relight: 0})")
    settle(page, 8)
    plain = snapshot(page)
    python = relight_once(dark, truth, None)
    cam, ours, ref, truth_level = luma(plain, inside), luma(lifted, inside), luma(python, inside), luma(photo, inside)
    assert abs(cam - luma(dark, inside)) < 4, "strength 0: the camera's pixels"
    assert ours > cam + 15 and ref > cam + 15, (cam, ours, ref, truth_level)
    assert abs(ours - ref) < 0.25 * (ref - cam), (cam, ours, ref)  # the page's lift is the stage's
    bg = ~cv2.dilate((truth > 0.02).astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    assert np.abs(lifted[bg].astype(int) - 64).max(axis=1).mean() < 6, "the background stays #404040"
    assert not [m for m in s.logs if m.startswith("pageerror")], s.logs[-5:]


def test_a_cool_picture_behind_a_tungsten_lit_person_cools_them_on_the_page(session, tmp_path, monkeypatch):  # noqa: F811
    """With the white-balance look's gains of before tuning served in /config (the shipped ones
    are 0): the page reads every constant from the declaration, so this is the page's look."""
    from backdrop.compose.relight import measure, to_linear, to_srgb
    from backdrop.evaluate.perturb import perturbed_composite, temperature_gains
    from backdrop.stages.relight import STAGE

    monkeypatch.setitem(STAGE.constants, "gain_warm", 0.5)
    monkeypatch.setitem(STAGE.constants, "gain_green", 0.3)

    srv, make = session
    photo, truth = portrait()
    warm = perturbed_composite(photo, truth, to_srgb(to_linear(photo) * temperature_gains(-3000)))
    cool = np.zeros((180, 320, 3), np.uint8)
    cool[:] = (150, 175, 215)
    cool = np.clip(cool + np.random.default_rng(1).normal(0, 12, cool.shape), 0, 255).astype(np.uint8)  # a scene, not a flat colour
    cv2.imwrite(str(tmp_path / "cool.png"), cool[..., ::-1])
    s = make(still_y4m(tmp_path / "warm.y4m", warm))
    page = s.open(f"?w={warm.shape[1]}&h={warm.shape[0]}")
    page.set_input_files("#upload", str(tmp_path / "cool.png"))
    page.evaluate("window.backdrop.setSettings({relight: 1, roi: false})")
    settle(page, 12)
    relit = snapshot(page)
    page.evaluate("window.backdrop.setSettings({relight: 0})")
    settle(page, 8)
    plain = snapshot(page)
    a = cv2.erode((truth > 0.98).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
    before, after = measure(plain, a).warm, measure(relit, a).warm
    assert after < before - 0.15, (before, after)
