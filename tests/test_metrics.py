"""Metrics on small hand-made arrays whose right answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from backdrop.metrics import (DtSSDAccumulator, FlickerAccumulator, IoUAccumulator, boundary_f, boundary_pr,
                              conn, dtssd, dtssd_pair, flicker, grad, iou, mad, mse, sad_unknown, unknown_band)
from backdrop.metrics.matting import gauss_derivative_filters
from backdrop.metrics.segmentation import band_pixels


def square(size=40, top=10, left=10, side=10) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[top:top + side, left:left + side] = 1
    return m


# -- IoU ---------------------------------------------------------------------------------------------

def test_iou_perfect_shifted_and_all_wrong():
    gt = square()
    assert iou(gt, gt) == 1.0
    # shifted 5 px right: intersection 10x5 = 50, union 100 + 100 - 50 = 150
    assert iou(square(left=15), gt) == pytest.approx(50 / 150)
    assert iou(1 - gt, gt) == 0.0


def test_iou_empty_cases_and_threshold():
    empty = np.zeros((8, 8), np.float32)
    assert iou(empty, empty) == 1.0           # nothing to find, nothing invented
    assert iou(empty, square(8, 2, 2, 4)) == 0.0
    soft = square(8, 2, 2, 4) * 0.6           # more person than not: counts
    assert iou(soft, square(8, 2, 2, 4)) == 1.0
    assert iou(soft, square(8, 2, 2, 4), threshold=0.7) == 0.0


def test_iou_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        iou(np.zeros((4, 4), np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError):
        iou(np.zeros((4, 4, 1), np.float32), np.zeros((4, 4, 1), np.float32))


def test_iou_accumulator_mean_vs_dataset():
    acc = IoUAccumulator()
    assert math.isnan(acc.dataset_iou) and math.isnan(acc.mean_iou)
    assert acc.update(square(left=15), square()) == pytest.approx(1 / 3)   # 50 / 150
    tiny = square(40, 0, 0, 2)
    assert acc.update(tiny, tiny) == 1.0                                   # 4 / 4
    assert len(acc) == 2
    assert acc.mean_iou == pytest.approx((1 / 3 + 1) / 2)
    assert acc.dataset_iou == pytest.approx((50 + 4) / (150 + 4))          # areas summed first


# -- boundary F --------------------------------------------------------------------------------------

def test_boundary_f_perfect_and_shift_within_band():
    gt = square()
    assert boundary_f(gt, gt) == 1.0
    assert boundary_f(square(left=12), gt, band=3) == 1.0     # 2 px off: inside a 3 px band
    assert boundary_f(square(left=12), gt, band=1) < 1.0
    assert boundary_f(square(left=25), gt, band=3) == 0.0     # far apart: no edge matches


def test_boundary_f_stray_pixel_hand_count():
    # a 10x10 square has 36 boundary pixels; one stray pixel far away adds 1 unmatched one:
    # precision 36/37, recall 1, F = 2 * (36/37) / (36/37 + 1) = 72/73
    gt = square()
    pred = gt.copy()
    pred[35, 35] = 1
    p, r = boundary_pr(pred, gt, band=3)
    assert (p, r) == (pytest.approx(36 / 37), 1.0)
    assert boundary_f(pred, gt, band=3) == pytest.approx(72 / 73)


def test_boundary_f_ignores_the_frame_edge():
    # a person filling the bottom half: the only edge is the row where it starts
    gt = np.zeros((40, 40), np.float32)
    gt[20:] = 1
    pred = np.zeros_like(gt)
    pred[22:] = 1
    assert boundary_f(pred, gt, band=3) == 1.0
    assert boundary_f(pred, gt, band=1) == 0.0   # if the frame edge counted, this would be > 0


def test_boundary_f_band_only_error_keeps_iou_high():
    gt = np.zeros((100, 100), np.float32)
    gt[10:90, 10:90] = 1
    pred = np.zeros_like(gt)
    pred[14:86, 14:86] = 1                 # 4 px short all round
    assert iou(pred, gt) > 0.8
    assert boundary_f(pred, gt, band=3) == 0.0
    # band 4: every predicted edge pixel matches (precision 1), but at each corner of the truth
    # 4 + 3 pixels are more than 4 px from the predicted corner (e.g. (10,10)-(14,14) = 5.66):
    # recall = (316 - 28) / 316, F = 2R / (1 + R) = 576 / 604
    assert boundary_pr(pred, gt, band=4) == (1.0, pytest.approx(288 / 316))
    assert boundary_f(pred, gt, band=4) == pytest.approx(576 / 604)
    assert boundary_f(pred, gt, band=6) == 1.0


def test_boundary_f_empty_cases_and_band_units():
    empty = np.zeros((10, 10), np.float32)
    assert boundary_f(empty, empty) == 1.0
    assert boundary_f(empty, square(10, 2, 2, 4)) == 0.0
    assert boundary_f(square(10, 2, 2, 4), empty) == 0.0
    assert band_pixels(0.008, (480, 854)) == 8          # DAVIS: 0.8 % of the diagonal
    assert band_pixels(3, (480, 854)) == 3


# -- MAD / MSE ---------------------------------------------------------------------------------------

def test_mad_mse_hand_values():
    gt = square()
    assert mad(gt, gt) == 0.0 and mse(gt, gt) == 0.0
    assert mad(1 - gt, gt) == pytest.approx(1000.0)    # every pixel fully wrong
    assert mse(1 - gt, gt) == pytest.approx(1000.0)
    off = np.clip(gt + 0.1, 0, 1).astype(np.float32)   # background 0.1 too high, person still 1
    frac_bg = 1 - 100 / 1600
    assert mad(off, gt) == pytest.approx(100 * frac_bg, rel=1e-5)
    assert mse(off, gt) == pytest.approx(10 * frac_bg, rel=1e-4)
    four = np.zeros((2, 2), np.float32)
    half = four.copy()
    half[0, 0] = 0.5
    assert mad(half, four) == pytest.approx(125.0)     # 0.5 / 4 * 1000
    assert mse(half, four) == pytest.approx(62.5)      # 0.25 / 4 * 1000


# -- Grad --------------------------------------------------------------------------------------------

def test_grad_kernel_matches_the_published_recipe():
    fx, fy = gauss_derivative_filters(1.4)
    assert fx.shape == (9, 9)                           # half size ceil(3.62) = 4
    assert np.sum(fx ** 2) == pytest.approx(1.0)        # unit L2 norm
    np.testing.assert_allclose(fx, -fx[:, ::-1], atol=1e-12)   # odd in x (a derivative)
    np.testing.assert_allclose(fy, fx.T)
    # G(i) * G'(j) by hand at one entry
    s = 1.4
    g = lambda x: math.exp(-x * x / (2 * s * s)) / (s * math.sqrt(2 * math.pi))  # noqa: E731
    raw = np.array([[g(i) * (-j * g(j) / s ** 2) for j in range(-4, 5)] for i in range(-4, 5)])
    np.testing.assert_allclose(fx, raw / np.sqrt((raw ** 2).sum()))


def test_grad_values():
    gt = square()
    assert grad(gt, gt) == 0.0
    assert grad(gt * 0.5, gt) == pytest.approx(0.0, abs=1e-12)   # alphas are normalised first
    flat = np.zeros_like(gt)
    fx, fy = gauss_derivative_filters(1.4)
    gx = ndimage.correlate(gt.astype(np.float64), fx, mode="nearest")
    gy = ndimage.correlate(gt.astype(np.float64), fy, mode="nearest")
    # a flat prediction has zero gradient: the error is the truth's own squared gradient energy
    assert grad(flat, gt) == pytest.approx(((gx ** 2 + gy ** 2).sum()) / 1000, rel=1e-9)
    assert grad(square(left=11), gt) > 0
    assert grad(square(left=14), gt) > grad(square(left=11), gt)


# -- Conn --------------------------------------------------------------------------------------------

def test_conn_hole_and_island_cost_one_pixel_each():
    full = np.ones((5, 5), np.float32)
    holed = full.copy()
    holed[2, 2] = 0
    assert conn(full, full) == 0.0
    # the hole is never connected (level 0): phi_gt = 1 - 1 = 0, phi_pred = 1 - 0 = 1 -> 1 / 1000
    assert conn(holed, full) == pytest.approx(0.001)
    gt = np.zeros((8, 8), np.float32)
    gt[:3, :3] = 1
    island = gt.copy()
    island[6, 6] = 1
    assert conn(island, gt) == pytest.approx(0.001)


def test_conn_theta_ignores_small_values():
    gt = np.zeros((8, 8), np.float32)
    gt[:3, :3] = 1
    faint = gt.copy()
    faint[6, 6] = 0.1            # d = 0.1 < theta 0.15: not counted
    assert conn(faint, gt) == 0.0
    faint[6, 6] = 0.2            # d = 0.2 >= 0.15: phi = 0.8, error 0.2 / 1000
    assert conn(faint, gt) == pytest.approx(0.0002)


# -- SAD in the unknown band -------------------------------------------------------------------------

def test_unknown_band_and_sad():
    gt = np.zeros((60, 60), np.float32)
    gt[:, :30] = 1
    band = unknown_band(gt, radius=3)
    assert band.any(axis=0).nonzero()[0].tolist() == list(range(27, 33))   # 3 px each side of the edge
    assert band[:, 27:33].all()
    assert sad_unknown(gt, gt, radius=3) == 0.0
    far = gt.copy()
    far[0, 59] = 1                                    # error far from the edge: outside the band
    assert sad_unknown(far, gt, radius=3) == 0.0 and mad(far, gt) > 0
    edge = gt.copy()
    edge[:, 30] = 1                                   # error in the band: 60 pixels fully wrong
    assert sad_unknown(edge, gt, radius=3) == pytest.approx(0.06)
    assert sad_unknown(np.ones_like(gt), np.ones_like(gt)) == 0.0          # no edge, no band


# -- dtSSD -------------------------------------------------------------------------------------------

def test_dtssd_one_pixel_flicker():
    still = [np.zeros((10, 10), np.float32)] * 3
    blink = [np.zeros((10, 10), np.float32) for _ in range(3)]
    blink[1][4, 4] = 1
    # each pair: one pixel changes by 1 -> sqrt(1 / 100) * 100 = 10
    assert dtssd_pair(blink[1], blink[0], still[1], still[0]) == pytest.approx(10.0)
    assert dtssd(blink, still) == pytest.approx(10.0)
    assert dtssd(still, blink) == pytest.approx(10.0)     # frozen while the truth moves: as bad
    assert dtssd(blink, blink) == 0.0


def test_dtssd_ignores_static_error_and_averages_pairs():
    gt = [square()] * 3
    wrong_but_steady = [square(left=20)] * 3
    assert dtssd(wrong_but_steady, gt) == 0.0
    seq = [np.zeros((10, 10), np.float32) for _ in range(3)]
    seq[2][4, 4] = 1                                      # pairs: 0 then 10
    acc = DtSSDAccumulator()
    assert [acc.update(p, g) for p, g in zip(seq, [seq[0]] * 3)] == [None, 0.0, pytest.approx(10.0)]
    assert acc.value == pytest.approx(5.0)                # mean over pairs, as RVM averages
    assert math.isnan(dtssd(seq[:1], seq[:1]))
    with pytest.raises(ValueError):
        dtssd(seq, seq[:2])


# -- flicker -----------------------------------------------------------------------------------------

def test_flicker_one_pixel_on_a_still_picture():
    frames = [np.full((10, 10, 3), 128, np.uint8)] * 3
    mattes = [np.zeros((10, 10), np.float32) for _ in range(3)]
    mattes[1][4, 4] = 1
    # two pairs, each: one of 100 static pixels changes by 1 -> 1000 * 2 / 200 = 10
    assert flicker(frames, mattes) == pytest.approx(10.0)
    assert flicker(frames, [mattes[0]] * 3) == 0.0
    assert math.isnan(flicker(frames[:1], mattes[:1]))


def test_flicker_ignores_change_where_the_picture_moved():
    frames, mattes = [], []
    for x in (5, 15, 25):
        f = np.zeros((40, 40, 3), np.uint8)
        f[15:25, x:x + 10] = 255
        frames.append(f)
        mattes.append((f[..., 0] > 0).astype(np.float32))   # the matte follows the moving block
    acc = FlickerAccumulator()
    for f, m in zip(frames, mattes):
        acc.update(f, m)
    assert acc.value == 0.0
    assert 0 < acc.static_fraction < 1
    # the same matte change on a still picture is flicker
    still = [frames[0]] * 3
    assert flicker(still, mattes) > 0


def test_flicker_rejects_mismatched_matte():
    acc = FlickerAccumulator()
    with pytest.raises(ValueError):
        acc.update(np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11), np.float32))
