"""Compositing: the equation, cover scaling, blur that never mixes in person pixels."""

from __future__ import annotations

import numpy as np
import pytest

from backdrop.compose.backgrounds import cover_resize, parse_background
from backdrop.compose.backgrounds.blur import BlurBackground
from backdrop.compose.composite import blend, to_rgba
from backdrop.errors import BackgroundError


def test_blend_is_the_compositing_equation():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    a = rng.random((7, 9)).astype(np.float32)
    expect = a[..., None] * f + (1 - a[..., None]) * b
    assert np.abs(blend(f, b, a).astype(float) - expect).max() <= 1.0


def test_cover_resize_keeps_aspect_and_fills():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, :100] = 255  # left half white
    out = cover_resize(img, 100, 100)  # square frame: centre crop, not a squash
    assert out.shape == (100, 100, 3)
    assert out[:, :45].mean() > 250 and out[:, 55:].mean() < 5


def test_blur_never_mixes_person_into_background():
    h, w = 120, 160
    rng = np.random.default_rng(1)
    frame = np.zeros((h, w, 3), np.uint8)
    frame[..., 1] = rng.integers(60, 200, (h, w), dtype=np.uint8)  # green-ish room, no red at all
    alpha = np.zeros((h, w), np.float32)
    alpha[30:100, 50:110] = 1.0
    frame[alpha > 0] = (255, 0, 0)  # a pure red person
    bg = BlurBackground(strength=10).render(0, frame, alpha)
    # a naive blur of the whole frame would spread red all around the person
    assert bg[..., 0].max() <= 2
    # and it is actually blurred: much less variance than the room
    room = alpha == 0
    assert bg[..., 1][room].std() < 0.5 * frame[..., 1][room].std()


def test_transparent_rgba_alpha_is_the_matte():
    f = np.full((4, 4, 3), 200, np.uint8)
    a = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    rgba = to_rgba(f, a)
    assert rgba.shape == (4, 4, 4)
    assert np.abs(rgba[..., 3] / 255 - a).max() < 1 / 255 + 1e-6


@pytest.mark.parametrize("spec", ["nope", "blur:abc", "blur:0", "/no/such/file.jpg", "#12345"])
def test_bad_background_specs(spec):
    with pytest.raises(BackgroundError):
        parse_background(spec)


def test_colour_specs():
    assert parse_background("#00b140").rgb == (0, 177, 64)
    assert parse_background("#fff").rgb == (255, 255, 255)
