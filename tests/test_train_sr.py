"""``backdrop train sr``: a tiny run on real clips trains, resumes where it stopped, keeps the
held-out clips out, and exports weights the runtime loads (ONNX and NumPy agreeing)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from conftest import shared_path
from test_cli import assert_clear_error, run

pytestmark = pytest.mark.train
pytest.importorskip("torch")


def _config(tmp_path):
    clips = shared_path("clips")
    others = [p.name for p in clips.iterdir() if p.name != "greenscreen-512.mp4"]
    cfg = tmp_path / "sr.toml"
    cfg.write_text(f"""
[model]
channels = [8, 4]
[data]
clips = ["{clips}"]
photos = ["{shared_path('backgrounds', 'porch-691330_1280.jpg')}"]
holdout = {others!r}
frames_per_window = 4
windows_per_clip = 1
keep_every = 1
photo_frames = 3
patch = 16
[optim]
steps = 10
batch_size = 4
eval_every = 5
[run]
out = "{tmp_path / 'run'}"
threads = 1
export_to = "{tmp_path / 'weights'}"
""")
    return cfg


def test_train_sr_trains_resumes_and_exports(tmp_path):
    from backdrop.superres.network import LumaNet, SRWeights, numpy_residual
    from backdrop.train.sr_data import load_pairs

    cfg = _config(tmp_path)
    res = run("train", "sr", cfg, "--quiet")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [0, 5, 10]
    assert_clear_error(run("train", "sr", cfg), "already holds a run")
    res = run("train", "sr", cfg, "--resume", "--quiet", "--set", "optim.steps=15")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "run" / "log.csv")))
    assert [int(r["step"]) for r in rows] == [0, 5, 10, 15]
    assert float(rows[-1]["val_psnr"]) > 0
    train, val = load_pairs(tmp_path / "run" / "pairs.npz")
    assert {n.split("#")[0].split("/")[0] for n in train.names + val.names} == {"greenscreen-512", "porch-691330_1280"}
    w = tmp_path / "weights"
    assert {p.name for p in w.iterdir()} >= {"sr-x2.npz", "sr-x2.onnx", "sr-x2.config.json", "sr-x2.log.csv"}
    weights = SRWeights.load(w / "sr-x2.npz")
    assert [int(a.shape[0]) for a, _ in weights.layers] == [8, 4, 4]
    y = cv2.cvtColor(cv2.imread(str(shared_path("backgrounds", "porch-691330_1280.jpg"))), cv2.COLOR_BGR2GRAY)[:40, :50]
    net = LumaNet(weights)
    ref = numpy_residual(weights, net.padded(y)) * 255
    assert np.abs(net.residual(y) - ref).max() < 0.01


def test_train_sr_refuses_a_scale_it_cannot_ship(tmp_path):
    assert_clear_error(run("train", "sr", _config(tmp_path), "--set", "model.scale=3"), "model.scale must be 2")
