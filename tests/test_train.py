"""CPU smoke training on real images, checkpoints, ONNX export/parity, the CLI and scene adaptation.

The smoke run trains a width-0.5 student at 128x128 for 24 steps on 6 real photos: enough to see
the loss fall and the IoU on those photos rise, small enough for CI (needs the [train] extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from backdrop.train import TrainError  # noqa: E402
from backdrop.train.config import TrainConfig, load_config  # noqa: E402
from conftest import REPO, shared_path  # noqa: E402

pytestmark = pytest.mark.train
MATTE_TERMS = ("bce", "dice", "boundary", "ohem")


def run_cli(*args, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "backdrop", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)


def smoke_config(out, **run) -> TrainConfig:
    return TrainConfig.from_dict({
        "model": {"width": 0.5, "input_height": 128, "input_width": 128, "name": "smoke"},
        "data": {"train": [str(shared_path("portraits-removebg"))], "limit": 6, "samples_per_epoch": 24,
                 "synth": 0.3, "teacher": "", "max_side": 192},
        "optim": {"epochs": 6, "batch_size": 6, "lr": 0.006, "warmup_steps": 3, "parsing_epochs": 2},
        "loss": {"distill": 0.0},
        "augment": {"geometry": {"scale": [0.9, 1.1], "rotate": 5.0, "translate": 0.05, "tps": 0.2},
                    "photo": {"blur": 0.1, "noise": 0.1, "jpeg": 0.1}},
        "run": {"out": str(out), "threads": 1, "export": False, "report_eval": False, "seed": 0, **run},
    })


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    from backdrop.train.evaluate import load_split, score
    from backdrop.train.loop import Trainer
    from backdrop.train.predict import TorchSegmenter

    threads = torch.get_num_threads()
    out = tmp_path_factory.mktemp("smoke") / "run"
    cfg = smoke_config(out)
    items = load_split(cfg.data.train, "train", cfg, max_side=192, limit=6)
    trainer = Trainer(cfg, quiet=True, people=[(i.image, i.alpha) for i in items], val=items)
    trainer.build_data()
    before = score(TorchSegmenter(trainer.model, trainer.spec), items)
    result = trainer.fit()
    torch.set_num_threads(threads)
    return {"cfg": cfg, "items": items, "trainer": trainer, "before": before, "result": result, "out": out}


def test_smoke_loss_falls_and_iou_rises(smoke):
    hist = smoke["result"]["history"]
    assert len(hist) == 6 and hist[-1]["step"] == 24
    first = sum(hist[0][k] for k in MATTE_TERMS)
    last = sum(hist[-1][k] for k in MATTE_TERMS)
    print(f"matte loss {first:.3f} -> {last:.3f}; IoU {smoke['before']['iou']:.3f} -> {hist[-1]['val_iou']:.3f}")
    assert last < 0.9 * first
    assert hist[-1]["val_iou"] > smoke["before"]["iou"] + 0.1
    assert "parsing" in hist[0] and "parsing" not in hist[-1]  # the first stage only
    rows = (smoke["out"] / "log.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,step") and len(rows) == 7


def test_checkpoint_round_trips_and_resumes(smoke):
    from backdrop.train.loop import Trainer
    from backdrop.train.predict import TorchSegmenter, load_student

    trainer = smoke["trainer"]
    # final.pt is the trained model as it stands after the run (BatchNorm re-estimated)
    model, spec, cfg = load_student(smoke["out"] / "final.pt")
    assert spec == trainer.spec and cfg["model"]["width"] == 0.5
    img = smoke["items"][0].image
    a = TorchSegmenter(trainer.model, trainer.spec)(img)
    b = TorchSegmenter(model, spec)(img)
    assert a.dtype == np.float32 and a.shape == img.shape[:2]
    assert np.abs(a - b).max() < 1e-6

    cfg7 = smoke_config(smoke["out"])
    cfg7.optim.epochs = 7
    more = Trainer(cfg7, quiet=True, people=trainer._people, backgrounds=trainer._backgrounds, val=smoke["items"][:2])
    r = more.fit(resume=True)
    assert r["epochs"] == 7 and r["steps"] == 28 and len(r["history"]) == 1
    assert len((smoke["out"] / "log.csv").read_text().splitlines()) == 8
    with pytest.raises(TrainError, match="already holds a run"):
        Trainer(cfg7, quiet=True, people=trainer._people, val=[]).fit()


def test_onnx_export_parity_metadata_and_video_cli(smoke, tmp_path):
    import onnx

    from backdrop import load_model
    from backdrop.models.spec import ONNX_METADATA_KEY, ModelSpec
    from backdrop.train.evaluate import load_split
    from backdrop.train.export import export_checkpoint, parity
    from backdrop.train.predict import load_student
    from media import write_video

    path = export_checkpoint(smoke["out"] / "final.pt", tmp_path / "student.onnx")
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= 17
    meta = {p.key: p.value for p in proto.metadata_props}
    spec = ModelSpec.from_json(meta[ONNX_METADATA_KEY])
    assert spec.layout == "NCHW" and spec.output == "sigmoid" and spec.input_size == (128, 128)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"

    model, _, _ = load_student(smoke["out"] / "final.pt")
    held = load_split(smoke["cfg"].data.train, "eval", smoke["cfg"], limit=4)  # real, unseen photos
    r = parity(model, path, [h.image for h in held])
    print(f"parity max abs diff {r['max_abs_diff']:.2e}")
    assert r["max_abs_diff"] < 1e-4 and r["batch_shape"] == [4, 1, 128, 128]

    seg = load_model(path)  # no flags: the spec comes from the metadata
    m = seg(held[0].image)
    assert m.shape == held[0].image.shape[:2] and m.dtype == np.float32

    frames = sorted(shared_path("clips-gt", "lucia", "frames").iterdir())[:5]
    from backdrop.io.image import read_image

    clip = write_video(tmp_path / "in.mp4", [read_image(f)[::2, ::2][:240, :426] for f in frames], audio=False)
    res = run_cli("video", clip, tmp_path / "out.mp4", "--model", path, "--background", "#00ff00", "--quiet")
    assert res.returncode == 0, res.stderr
    from backdrop.io.video import probe

    assert probe(tmp_path / "out.mp4")["frames"] == 5


def main_cli(capsys, *args):
    """Run ``backdrop ...`` in this process (no second torch import): (status, stdout, stderr)."""
    from backdrop.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_export_with_parity_and_info(smoke, tmp_path, capsys):
    rc, _, err = main_cli(capsys, "train", "export", smoke["out"] / "last.pt", tmp_path / "m.onnx", "--check",
                          shared_path("portraits-soft", "images"))
    assert rc == 0, err
    assert "max abs diff" in err and (tmp_path / "m.onnx").is_file()
    rc, out, err = main_cli(capsys, "train", "info", "--width", "0.5")
    assert rc == 0, err
    info = json.loads(out)
    assert info["model"]["params"] < 500_000 and info["model"]["gflops"] > 0.1


def test_cli_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nepochs = 'many'\n")
    for args, needle in [(("train", "fit", tmp_path / "missing.toml"), "config file not found"),
                         (("train", "fit", bad), "optim.epochs"),
                         (("train", "export", tmp_path / "none.pt", tmp_path / "x.onnx"), "checkpoint not found"),
                         (("train", "adapt", "--frames", tmp_path / "nothing", "--out", tmp_path / "o"),
                          "frames not found"),
                         (("train", "info", "--evaluate"), "needs --checkpoint")]:
        rc, _, err = main_cli(capsys, *args)
        assert rc == 2, err
        lines = [ln for ln in err.splitlines() if ln.startswith("backdrop: error:")]
        assert len(lines) == 1 and needle in lines[0], err


def test_config_files_toml_yaml_and_overrides(tmp_path):
    cfg = load_config(REPO / "configs" / "portrait-w050.toml")
    assert cfg.model.width == 0.5 and cfg.augment.geometry.scale == (0.75, 1.25)
    y = tmp_path / "c.yaml"
    y.write_text("model:\n  width: 0.75\nloss:\n  lovasz: 1.0\n")
    cfg = load_config(y, ["optim.epochs=3", "data.train=[\"a\", \"b\"]"])
    assert cfg.model.width == 0.75 and cfg.loss.lovasz == 1.0 and cfg.optim.epochs == 3
    assert cfg.data.train == ["a", "b"]
    with pytest.raises(TrainError, match="unknown config key model.depth"):
        load_config(None, ["model.depth=3"])


def test_adapt_to_a_scene_improves_iou_vs_teacher(smoke, tmp_path):
    from backdrop.train.adapt import adapt

    clip = shared_path("clips", "talking-room-512x480.mp4")
    threads = torch.get_num_threads()
    try:
        r = adapt(clip, tmp_path / "adapt", checkpoint=smoke["out"] / "last.pt", every=30, max_frames=12,
                  holdout=0.25, quiet=True,
                  overrides=["data.samples_per_epoch=24", "optim.batch_size=6", "optim.epochs=4",
                             "optim.lr=0.003", "data.max_side=192"])
    finally:
        torch.set_num_threads(threads)
    print(f"adapt: IoU vs teacher {r['before']['iou']:.3f} -> {r['after']['iou']:.3f}")
    assert r["held_out"] == 3 and r["labelled"] >= 5
    assert r["after"]["iou"] > r["before"]["iou"]
    assert (tmp_path / "adapt" / "model.onnx").is_file() and (tmp_path / "adapt" / "clean_plate.png").is_file()
