"""The evaluation engine and ``backdrop eval``: wiring on constructed files, numbers on real data."""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from backdrop import Pipeline, PipelineOptions
from backdrop.cli import main
from backdrop.errors import InputError
from backdrop.evaluate import (evaluate, evaluate_images, evaluate_sequence, fit_truth, looks_like_frames,
                               match_pairs, read_truth)
from backdrop.metrics import iou
from backdrop.models.base import Segmenter

from conftest import load_pairs, shared_path


class RedSpec:
    """Pre/post-processing of the stand-in model: the input is the output."""

    aspect = 1.0

    def preprocess(self, rgb):
        return rgb

    def postprocess(self, y):
        return y[..., 0].astype(np.float32) / 255.0


class RedIsPerson(Segmenter):
    """A stand-in model whose matte is the red channel: lets a test draw the prediction."""

    spec = RedSpec()

    def run(self, x):
        return x


def red_pipeline() -> Pipeline:
    return Pipeline(background="matte", options=PipelineOptions.raw(), segmenter=RedIsPerson())


def rect(h, w, top, left, bh, bw) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[top:top + bh, left:left + bw] = 255
    return m


def save_rgb_from_mask(path, mask):
    Image.fromarray(np.dstack([mask, np.zeros_like(mask), np.full_like(mask, 90)])).save(path)


@pytest.fixture
def synthetic(tmp_path):
    """Photos whose red channel is the prediction, and truth in several forms."""
    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    person = rect(40, 60, 10, 20, 20, 20)
    save_rgb_from_mask(imgs / "a.png", person)
    Image.fromarray(person).save(masks / "a.png")                       # same size, grey
    save_rgb_from_mask(imgs / "b.png", person)
    Image.fromarray(person[::2, ::2]).save(masks / "b.bmp")             # half size, other format
    save_rgb_from_mask(imgs / "c.png", person)
    cutout = np.dstack([np.full((40, 60, 3), 200, np.uint8), person])   # RGBA cut-out: alpha is truth
    Image.fromarray(cutout, "RGBA").save(masks / "c.png")
    save_rgb_from_mask(imgs / "f.png", rect(40, 60, 10, 30, 20, 20))    # shifted 10 px of 20: IoU 1/3
    Image.fromarray(person).save(masks / "f.png")
    save_rgb_from_mask(imgs / "lonely.png", person)                     # no truth
    Image.fromarray(person).save(masks / "orphan.png")                  # no image
    return imgs, masks


# -- constructed data: the wiring --------------------------------------------------------------------

def test_match_pairs_by_stem(synthetic):
    imgs, masks = synthetic
    pairs, lone_images, lone_truth = match_pairs(imgs, masks)
    assert [p[0] for p in pairs] == ["a", "b", "c", "f"]
    assert pairs[1][2].name == "b.bmp"
    assert lone_images == ["lonely"] and lone_truth == ["orphan"]


def test_read_truth_forms(synthetic):
    _, masks = synthetic
    a, soft = read_truth(masks / "a.png")
    assert a.dtype == np.float32 and a.shape == (40, 60) and set(np.unique(a)) == {0.0, 1.0} and not soft
    c, _ = read_truth(masks / "c.png")
    np.testing.assert_array_equal(c, a)                 # the alpha channel, not the grey RGB
    b, _ = read_truth(masks / "b.bmp")
    assert b.shape == (20, 30)
    assert iou(fit_truth(b, (40, 60)), a) == 1.0        # 2x bilinear keeps the edge at 0.5
    with pytest.raises(InputError, match="aspect"):
        fit_truth(b, (40, 40))


def test_evaluate_images_hand_known(synthetic, tmp_path):
    imgs, masks = synthetic
    report = evaluate_images(imgs, masks, pipeline=red_pipeline(), worst=1, out_dir=tmp_path / "worst")
    s = report.summary
    by_name = {it["name"]: it for it in report.items}
    assert s["count"] == 4 and s["unmatched_images"] == 1 and s["unmatched_truth"] == 1
    assert s["truth_resized"] == 1
    for name in "abc":
        assert by_name[name]["iou"] == 1.0 and by_name[name]["boundary_f"] == 1.0
    assert by_name["a"]["mad"] == 0.0
    assert by_name["f"]["iou"] == pytest.approx(1 / 3)
    assert s["iou"] == pytest.approx((3 + 1 / 3) / 4)
    assert s["dataset_iou"] == pytest.approx((3 * 400 + 200) / (3 * 400 + 600))
    assert len(report.worst) == 1 and report.worst[0].endswith("01_f.png")
    pic = np.asarray(Image.open(report.worst[0]))
    assert pic.shape == (40 + 40, 4 * 60 + 3 * 4, 3)    # caption strip + four panels
    json.dumps(report.to_dict(), allow_nan=False)


def test_evaluate_errors(synthetic, tmp_path):
    imgs, _ = synthetic
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no image"):
        evaluate_images(imgs, empty, pipeline=red_pipeline())
    with pytest.raises(InputError, match="not found"):
        evaluate(tmp_path / "nope", empty)
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(rect(40, 40, 5, 5, 10, 10)).save(odd / "a.png")
    with pytest.raises(InputError, match="aspect"):
        evaluate_images(imgs, odd, pipeline=red_pipeline())


def test_sequence_with_one_pixel_flicker(tmp_path):
    frames, masks = tmp_path / "frames", tmp_path / "masks"
    frames.mkdir()
    masks.mkdir()
    truth = rect(20, 20, 5, 5, 8, 8)
    for i in range(3):
        pred = truth.copy()
        if i == 1:
            pred[0, 0] = 255                           # one pixel blinks on for one frame
        save_rgb_from_mask(frames / f"{i:05d}.png", pred)
        Image.fromarray(truth).save(masks / f"{i:05d}.png")
    assert looks_like_frames(frames)
    report = evaluate(frames, masks, pipeline=red_pipeline())
    assert report.mode == "sequence"
    # each pair: one pixel of 400 off by 1 -> 100 * sqrt(1/400) = 5
    assert report.summary["dtssd"] == pytest.approx(5.0)
    assert report.summary["iou"] == pytest.approx((1 + 64 / 65 + 1) / 3)


# -- real data: the numbers --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def selfie_default(segmenter):
    return Pipeline(background="matte", segmenter=segmenter)


def test_portraits_real_numbers(selfie_default, tmp_path):
    root = shared_path("portraits-removebg")
    report = evaluate_images(root / "images", root / "masks", pipeline=selfie_default, limit=10,
                             worst=2, out_dir=tmp_path)
    s = report.summary
    assert s["count"] == 10
    assert s["iou"] > 0.8 and s["dataset_iou"] > 0.8
    assert 0.3 < s["boundary_f"] <= 1.0
    assert 0 < s["mad"] < 150 and s["grad"] > 0 and s["conn"] > 0 and s["sad_unknown"] > 0
    assert not s["soft_truth"]
    assert len(report.worst) == 2
    worst_names = {os.path.basename(p).split("_", 1)[1][:-4] for p in report.worst}
    lowest = sorted(report.items, key=lambda it: it["iou"])[:2]
    assert worst_names == {it["name"] for it in lowest}


def test_engine_agrees_with_direct_metric(segmenter):
    """Matching by stem and resizing the truth give what a hand-written loop gives."""
    root = shared_path("portraits-removebg")
    raw = Pipeline(background="matte", options=PipelineOptions.raw(), segmenter=segmenter)
    report = evaluate_images(root / "images", root / "masks", pipeline=raw, limit=6)
    for it, (name, img, gt) in zip(report.items, load_pairs("portraits-removebg", limit=6)):
        assert it["name"] == name
        assert it["iou"] == pytest.approx(iou(segmenter(img), gt), abs=0.01)


def test_soft_truth_detected(selfie_default):
    root = shared_path("portraits-soft")
    report = evaluate_images(root / "images", root / "masks", pipeline=selfie_default, limit=3)
    assert report.summary["soft_truth"] and report.summary["iou"] > 0.8


def test_hike_sequence_real_numbers(selfie_default, tmp_path):
    root = shared_path("clips-gt", "hike")
    report = evaluate(root / "frames", root / "masks", pipeline=selfie_default, limit=15)
    s = report.summary
    assert report.mode == "sequence" and s["count"] == 15
    assert s["iou"] > 0.8
    assert 0 < s["dtssd"] < 30 and math.isfinite(s["flicker"])
    assert [it["name"] for it in report.items][:2] == ["00000", "00001"]
    assert report.items[0]["dtssd"] is None and report.items[1]["dtssd"] > 0

    # the same truth as a video of masks (matched by frame order)
    from backdrop.io.video import VideoWriter

    vid = tmp_path / "masks.mp4"
    w = VideoWriter(vid, width=854, height=480, rate=Fraction(25), time_base=Fraction(1, 25), pixel_format="gray",
                    crf=10)
    for i in range(10):
        w.write(np.asarray(Image.open(root / "masks" / f"{i:05d}.png").convert("L")), i)
    w.close()
    by_video = evaluate_sequence(root / "frames", vid, pipeline=selfie_default, limit=10)
    assert by_video.summary["iou"] == pytest.approx(np.mean([it["iou"] for it in report.items[:10]]), abs=0.02)


def test_video_without_truth_gives_flicker(selfie_default):
    report = evaluate(shared_path("clips", "greenscreen-512.mp4"), pipeline=selfie_default, limit=12)
    s = report.summary
    assert report.mode == "video" and s["count"] == 12
    assert math.isfinite(s["flicker"]) and s["flicker"] >= 0 and s["static_fraction"] > 0.5
    assert "iou" not in s


# -- the command -------------------------------------------------------------------------------------

def test_cli_json_and_worst(tmp_path, capsys):
    root = shared_path("portraits-removebg")
    out = tmp_path / "out"
    rc = main(["eval", str(root / "images"), str(root / "masks"), "--limit", "4", "--json", "--worst", "2",
               "--out", str(out), "--quiet"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "images" and data["summary"]["count"] == 4 and len(data["items"]) == 4
    assert data["config"]["model"] == "selfie"
    assert 0 < data["summary"]["iou"] <= 1
    assert sorted(p.name for p in out.glob("*.png")) == sorted(os.path.basename(p)
                                                                 for p in data["worst"])
    assert len(data["worst"]) == 2
    assert json.loads((out / "report.json").read_text())["summary"] == data["summary"]


def test_cli_table_and_user_errors(tmp_path, capsys):
    root = shared_path("clips-gt", "lucia")
    assert main(["eval", str(root / "frames"), str(root / "masks"), "--limit", "3", "--raw", "-q"]) == 0
    text = capsys.readouterr().out
    assert "mean IoU" in text and "dtSSD" in text and "3 frames" in text
    assert main(["eval", str(tmp_path / "missing"), str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("backdrop: error:") and "\n" not in err
    assert main(["eval", str(root / "frames"), str(root / "masks"), "--worst", "-1"]) == 2
