"""Training data without torch: pairs, splits, border-preserving warps, augmentation, teacher labels.

These run in the default test suite (no [train] extra needed): the data side is NumPy/OpenCV.
"""

from __future__ import annotations

import numpy as np
import pytest

from backdrop.train import TrainError
from backdrop.train.data import SPLITS, find_pairs, iter_frames, load_pair, remove_person, select, split_of
from backdrop.train.geometry import GeometryConfig, random_geometry, random_tps_maps, touching_borders, tps_warp, warp
from backdrop.train.photometric import PhotoConfig, photometric
from backdrop.train.synth import SynthConfig, SynthDataset, composite, random_background
from backdrop.train.teacher import label_frame, label_frames
from conftest import shared_path

MIRROR = {"left": "right", "right": "left", "top": "top", "bottom": "bottom"}


@pytest.fixture(scope="module")
def pairs():
    return find_pairs(shared_path("portraits-removebg"))


@pytest.fixture(scope="module")
def people(pairs):
    return [load_pair(p, max_side=256) for p in select(pairs, "train")[:24]]


def half_body(h=120, w=100):
    """A head (top) and shoulders cut by the bottom border: the common portrait."""
    yy, xx = np.mgrid[:h, :w]
    head = ((yy - 35) / 22.0) ** 2 + ((xx - 50) / 17.0) ** 2 <= 1
    body = ((yy - 130) / 60.0) ** 2 + ((xx - 50) / 45.0) ** 2 <= 1
    return (head | body).astype(np.float32), head


def test_pairs_and_deterministic_disjoint_splits(pairs):
    assert len(pairs) == 290
    parts = {s: {p.name for p in select(pairs, s)} for s in SPLITS}
    assert sum(map(len, parts.values())) == 290
    assert not (parts["train"] & parts["eval"]) and not (parts["val"] & parts["eval"])
    assert 0.12 < len(parts["eval"]) / 290 < 0.28            # about 20%
    # a pure function of the name: order and repetition change nothing
    assert {p.name for p in select(list(reversed(pairs)), "eval")} == parts["eval"]
    assert all(split_of(n) == "eval" for n in parts["eval"])
    with pytest.raises(TrainError):
        select(pairs, "test")


def test_load_pair_resizes_small_masks_to_the_image(pairs):
    small = next(p for p in pairs if p.name == "2")  # index.csv: mask smaller than image? any works
    img, a = load_pair(small, max_side=None)
    assert img.dtype == np.uint8 and img.ndim == 3
    assert a.shape == img.shape[:2] and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1


def test_find_pairs_folder_layout_and_errors(tmp_path):
    from backdrop.io.image import write_image

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_image(tmp_path / "images" / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "masks" / "a.png", np.zeros((8, 8), np.uint8))
    write_image(tmp_path / "images" / "b.jpg", np.zeros((8, 8, 3), np.uint8))  # no mask: skipped
    assert [p.name for p in find_pairs(tmp_path)] == ["a"]
    with pytest.raises(TrainError, match="not found"):
        find_pairs(tmp_path / "nope")
    with pytest.raises(TrainError, match="neither"):
        find_pairs(tmp_path / "images")


@pytest.mark.parametrize("seed", range(40))
def test_touching_borders_stay_touched_synthetic(seed):
    alpha, head = half_body()
    assert touching_borders(alpha) == {"bottom"}
    rng = np.random.default_rng(seed)
    M, flip = random_geometry(alpha, (96, 96), rng, GeometryConfig(scale=(0.5, 1.3), rotate=20, translate=0.3))
    a, h = warp([alpha, head.astype(np.float32)], M, (96, 96))
    assert "bottom" in touching_borders(a), "a half-body must not float"
    # left-right flip only: the head stays above the body
    ys = np.mgrid[:96, :96][0]
    body = (a > 0.5) & (h < 0.5)
    assert (ys * (h > 0.5)).sum() / max(1, (h > 0.5).sum()) < (ys * body).sum() / max(1, body.sum())


def test_touching_borders_stay_touched_on_real_masks(people):
    rng = np.random.default_rng(1)
    checked = 0
    for img, alpha in people:
        before = touching_borders(alpha)
        for _ in range(5):
            (src,) = tps_warp([alpha], random_tps_maps(*alpha.shape, rng, 0.06))
            assert touching_borders(src) >= before, "the TPS keeps border contacts"
            M, flip = random_geometry(src, (128, 128), rng)
            (a,) = warp([src], M, (128, 128))
            after = touching_borders(a, min_pixels=1)  # a 2-px contact may shrink to 1 px
            for b in before:
                assert (MIRROR[b] if flip else b) in after, (b, flip, before, after)
                checked += 1
    assert checked > 50


def test_tps_pins_the_borders_and_is_identity_at_zero():
    rng = np.random.default_rng(0)
    mx, my = random_tps_maps(60, 80, rng, strength=0.0)
    gy, gx = np.mgrid[:60, :80].astype(np.float32)
    assert np.abs(mx - gx).max() < 0.05 and np.abs(my - gy).max() < 0.05
    mx, my = random_tps_maps(60, 80, rng, strength=0.08)
    assert np.abs(mx - gx).max() > 1.0  # it does warp the interior
    assert (my[0] == 0).all() and (my[-1] == 59).all()  # top/bottom rows sample the same rows
    assert (mx[:, 0] == 0).all() and (mx[:, -1] == 79).all()


def test_photometric_is_seeded_and_keeps_format():
    img = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    a = photometric(img, np.random.default_rng(5))
    b = photometric(img, np.random.default_rng(5))
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert np.array_equal(a, b)
    off = PhotoConfig(brightness=0, contrast=0, saturation=0, hue=0, gamma=(1, 1), blur=0, noise=0, jpeg=0)
    assert np.abs(photometric(img, np.random.default_rng(5), off).astype(int) - img).max() <= 1


def test_composite_formula_and_background_crop():
    fg = np.full((4, 4, 3), 200, np.uint8)
    bg = np.full((4, 4, 3), 100, np.uint8)
    a = np.full((4, 4), 0.25, np.float32)
    assert (composite(fg, a, bg) == 125).all()
    crop = random_background(np.zeros((50, 30, 3), np.uint8), (64, 96), np.random.default_rng(0))
    assert crop.shape == (64, 96, 3)


def test_synth_dataset_is_a_pure_function_of_seed_epoch_index(people):
    bgs = [remove_person(i, a) for i, a in people[:4]]
    ds = SynthDataset(people[:6], bgs, SynthConfig(height=96, width=96, consistency=True), length=10, seed=3)
    s1, s2 = ds[4], ds[4]
    assert np.array_equal(s1["image"], s2["image"]) and np.array_equal(s1["alpha"], s2["alpha"])
    assert s1["image"].shape == (96, 96, 3) and s1["alpha"].shape == (96, 96)
    assert "image2" in s1 and not np.array_equal(s1["image"], s1["image2"])
    ds.set_epoch(1)
    assert not np.array_equal(ds[4]["image"], s1["image"])
    assert 0.0 <= s1["alpha"].min() and s1["alpha"].max() <= 1.0


def test_remove_person_leaves_background():
    img = np.full((40, 40, 3), 90, np.uint8)
    img[10:30, 10:30] = 250
    a = np.zeros((40, 40), np.float32)
    a[10:30, 10:30] = 1
    plate = remove_person(img, a, grow=2)
    assert np.abs(plate.astype(int) - 90).max() < 20


def test_iter_frames_from_video_and_folder(tmp_path):
    from media import write_video

    frames = [np.full((32, 48, 3), 10 * i, np.uint8) for i in range(9)]
    v = write_video(tmp_path / "v.mp4", frames, audio=False)
    got = list(iter_frames(v, every=3))
    assert len(got) == 3 and got[0][1].shape == (32, 48, 3)
    got = list(iter_frames(shared_path("clips-gt", "lucia", "frames"), every=10, limit=4))
    assert len(got) == 4
    with pytest.raises(TrainError):
        list(iter_frames(tmp_path / "missing.mp4"))


class FlipBlindTeacher:
    """A fake teacher that sees the person on the left whatever the frame: flip-inconsistent."""

    def __call__(self, frame):
        m = np.zeros(frame.shape[:2], np.float32)
        m[:, : frame.shape[1] // 3] = 1
        return m


def test_teacher_labels_real_portraits_and_filters_disagreement(segmenter, portrait_pairs, tmp_path):
    img = portrait_pairs[0][1]
    lab = label_frame(segmenter, img)
    assert lab.keep and lab.agreement > 0.9
    assert lab.matte.shape == img.shape[:2] and lab.matte.dtype == np.float32
    bad = label_frame(FlipBlindTeacher(), img)
    assert not bad.keep
    frames = [(n, i) for n, i, _ in portrait_pairs[:3]]
    r = label_frames(segmenter, frames, tmp_path / "lab")
    assert r["kept"] == 3
    assert len(find_pairs(tmp_path / "lab")) == 3
    r = label_frames(FlipBlindTeacher(), frames, tmp_path / "lab2")
    assert r["kept"] == 0 and r["dropped"] == 3
