"""``backdrop train relight`` (issue 23): the learned estimate of the relight look, on real portraits.

A short run on the tuning photos of portraits-soft writes its config, log and weights; the weights
load with NumPy alone and give a look; the held-out photos never take part; bad input is exit 2.
"""

from __future__ import annotations

import csv
import json

import pytest

from backdrop.cli import main

from conftest import shared_path

pytest.importorskip("torch")


def test_a_short_run_writes_config_log_and_weights_the_runtime_reads(tmp_path, capsys):
    from backdrop.compose.relight_estimate import scene_of
    from backdrop.compose.relight_learned import LearnedLook
    from backdrop.evaluate.harmonize import held_out
    from backdrop.evaluate.sources import iter_people

    root = shared_path("portraits-soft")
    out = tmp_path / "run"
    assert main(["train", "relight", "--data", str(root), "--out", str(out), "--epochs", "10", "--per-photo", "2",
                 "--limit", "6", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    names = [f"portraits-soft/{n}" for n, _, _ in iter_people(root / "images", root / "masks", limit=6)]
    assert summary["samples"] == 2 * sum(not held_out(n) for n in names) < 2 * len(names)
    assert json.loads((out / "config.json").read_text())["epochs"] == 10
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 10
    # it starts as "no correction" and learns: validation no worse than where it started
    assert float(summary["best_val_fmse"]) <= float(rows[0]["val_fmse_lift_only"]) + 1e-3
    learned = LearnedLook(out / "relight.json")
    name, photo, alpha = next(iter_people(root / "images", root / "masks"))
    look = learned(scene_of(photo, alpha, photo))
    assert abs(look.exposure) < 3 and abs(look.warm) < 3


def test_train_relight_user_errors(tmp_path, capsys):
    assert main(["train", "relight", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "images/ and masks/" in capsys.readouterr().err
    assert main(["train", "relight", "--data", str(tmp_path), "--epochs", "0"]) == 2
    assert main(["train", "relight", "--data", str(tmp_path), "--limit", "0"]) == 2
