"""Hostile training configs, data, checkpoints and targets (issue 21): each is one line, exit 2.

The cases were tracebacks (13 kinds) or were accepted and "succeeded" with nothing learned:
zero epochs, zero samples, NaN fractions, missing teachers, all-NaN teacher masks. Every case
runs the real ``backdrop train`` command line in this process (one torch import) and stops
before any training step, so the file stays fast. Outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from conftest import shared_path  # noqa: E402

pytestmark = pytest.mark.train


def main_cli(capsys, *args) -> tuple[int, str]:
    """``backdrop ...`` in this process: (status, the one error line). Fails on a traceback."""
    from backdrop.cli import main

    capsys.readouterr()
    rc = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("backdrop: error:")]
    return rc, (lines[0] if len(lines) == 1 else err)


def refused(capsys, fragment: str | tuple[str, ...], *args) -> str:
    """Exit 2 and one error line holding ``fragment`` (or one of several)."""
    rc, line = main_cli(capsys, *args)
    frags = (fragment,) if isinstance(fragment, str) else fragment
    assert rc == 2 and line.startswith("backdrop: error:") and any(f in line for f in frags), (rc, line)
    return line


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cfg")
    path = d / "small.toml"
    path.write_text(f"""
[model]
width = 0.35
input_height = 64
input_width = 64
[data]
train = ["{shared_path('portraits-removebg')}"]
limit = 4
samples_per_epoch = 8
teacher = ""
max_side = 96
[optim]
epochs = 1
batch_size = 4
[loss]
distill = 0.0
[run]
threads = 1
export = false
report_eval = false
""")
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real (untrained) width-0.35 student checkpoint, 64x64, as ``train fit`` writes them."""
    from backdrop.train.config import TrainConfig
    from backdrop.train.model import build_model
    from backdrop.train.predict import save_checkpoint, spec_for

    cfg = TrainConfig.from_dict({"model": {"width": 0.35, "input_height": 64, "input_width": 64}})
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, {"model": build_model(0.35).state_dict(), "config": cfg.to_dict(),
                           "spec": spec_for("tiny", 64, 64).to_json()})
    return path


# -- config values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("override,fragment", [
    ("optim.epochs=0", "optim.epochs"),
    ("optim.epochs=1e400", "optim.epochs"),
    ("optim.lr=NaN", "optim.lr"),
    ("optim.lr=-1", "optim.lr"),
    ("optim.batch_size=0", "optim.batch_size"),
    ("data.samples_per_epoch=0", "data.samples_per_epoch"),
    ("data.samples_per_epoch=3", "train on nothing"),
    ("data.eval_fraction=NaN", "data.eval_fraction"),
    ("data.val_fraction=-0.1", "data.val_fraction"),
    ("data.eval_fraction=0.6", "nothing left to train"),
    ("model.input_height=1000000", "model.input_height"),
    ("model.width=0", "model.width"),
    ("optim.batch_size=4096", "Mpx a batch"),
    ("augment.geometry.scale=[2, 1]", "low <= high"),
    ("augment.photo.gamma=[0.5, NaN]", "augment.photo.gamma"),
    ("loss.bce=-1", "loss.bce"),
    ("data.teacher='missing-teacher.onnx'", "model file not found"),
    ("loss.distill=0.5", "needs data.teacher"),
])
def test_bad_config_values_are_one_line(capsys, config, tmp_path, override, fragment):
    extra = {"nothing left to train": ["--set", "data.val_fraction=0.5"],
             "Mpx a batch": ["--set", "model.input_width=2048"]}.get(fragment, [])
    refused(capsys, fragment, "train", "fit", config, "--out", tmp_path / "run", "--set", override, *extra, "-q")
    assert not (tmp_path / "run").exists()


def test_missing_eval_teacher_is_refused_before_training(capsys, config, tmp_path):
    refused(capsys, "unknown model", "train", "fit", config, "--out", tmp_path / "run", "--set", "run.report_eval=true",
            "--set", "run.eval_teacher='no-such-teacher'", "-q")
    assert not (tmp_path / "run").exists()  # it trained a whole run before saying so


def test_a_split_with_no_training_images_is_refused(capsys, tmp_path):
    pairs = tmp_path / "pairs"
    (pairs / "images").mkdir(parents=True)
    (pairs / "masks").mkdir()
    soft = shared_path("portraits-soft")
    name = sorted((soft / "images").iterdir())[0].name
    (pairs / "images" / name).symlink_to(soft / "images" / name)
    (pairs / "masks" / name).symlink_to(soft / "masks" / name)
    cfg = tmp_path / "one.toml"
    cfg.write_text(f'[model]\nwidth = 0.35\ninput_height = 64\ninput_width = 64\n[data]\ntrain = ["{pairs}"]\n'
                   f'train_split = "eval"\neval_fraction = 0.0\nsamples_per_epoch = 8\nteacher = ""\n'
                   f'[optim]\nbatch_size = 4\n[loss]\ndistill = 0.0\n[run]\nexport = false\nreport_eval = false\n')
    refused(capsys, "no training images", "train", "fit", cfg, "--out", tmp_path / "run", "-q")


# -- hostile index.csv ------------------------------------------------------------------------------

@pytest.mark.parametrize("content,fragment", [
    (b"name,image,mask\na,/etc/passwd,/etc/passwd\n", "outside the data folder"),
    (b"name,image,mask\na,../../x.png,m.png\n", "outside the data folder"),
    (b"name,image,mask\na,\xff\xfe.png,m.png\n", "not a readable CSV"),
    (b"name,image,mask\na,\0.png,m.png\n", ("not a readable CSV", "not a usable path")),
    (b"name,image,mask\na," + b"x" * 200_000 + b",m.png\n", "not a readable CSV"),
    (b"name,image,mask\na\n", "empty image or mask path"),
])
def test_hostile_index_csv_is_one_line(capsys, tmp_path, content, fragment):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "index.csv").write_bytes(content)
    refused(capsys, fragment, "train", "info", "--set", f"data.train=['{folder}']")


# -- checkpoints --------------------------------------------------------------------------------------

def _bad_checkpoints(folder: Path, good: Path) -> dict[str, Path]:
    from backdrop.train.predict import read_checkpoint

    state = read_checkpoint(good)
    out = {"empty": folder / "empty.pt", "garbage": folder / "garbage.pt", "nospec": folder / "nospec.pt",
           "huge": folder / "huge.pt", "wide": folder / "wide.pt"}
    out["empty"].write_bytes(b"")
    out["garbage"].write_bytes(os.urandom(4096))
    torch.save({k: v for k, v in state.items() if k != "spec"}, out["nospec"])
    huge = dict(state, spec=state["spec"].replace('"input_height": 64', '"input_height": 1000000'))
    torch.save(huge, out["huge"])
    from backdrop.train.model import build_model

    torch.save(dict(state, model=build_model(1.0).state_dict()), out["wide"])  # weights of another width
    return out


def test_bad_checkpoints_for_export_resume_and_init(capsys, config, checkpoint, tmp_path):
    bad = _bad_checkpoints(tmp_path, checkpoint)
    for kind, fragment in (("empty", "cannot read checkpoint"), ("garbage", "cannot read checkpoint"),
                           ("nospec", "not a backdrop training checkpoint"), ("huge", "1000000x64 input"),
                           ("wide", "does not match")):
        refused(capsys, fragment, "train", "export", bad[kind], tmp_path / f"{kind}.onnx")
        assert not (tmp_path / f"{kind}.onnx").exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(checkpoint.read_bytes())  # weights only: no optimiser state
    refused(capsys, "cannot resume from last.pt", "train", "fit", config, "--out", run, "--resume", "-q")
    (run / "last.pt").write_bytes(bad["wide"].read_bytes())
    refused(capsys, "does not match", "train", "fit", config, "--out", run, "--resume", "-q")
    refused(capsys, "does not match", "train", "fit", config, "--out", tmp_path / "r2", "--init", bad["wide"], "-q")


# -- export targets ---------------------------------------------------------------------------------

def test_export_to_a_folder_a_device_and_impossible_opsets(capsys, checkpoint, tmp_path):
    import stat

    folder = tmp_path / "target"
    folder.mkdir()
    refused(capsys, "is a folder", "train", "export", checkpoint, folder)
    try:
        os.mknod(tmp_path / "dev.onnx", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    refused(capsys, "is a device", "train", "export", checkpoint, tmp_path / "dev.onnx")
    assert stat.S_ISCHR(os.lstat(tmp_path / "dev.onnx").st_mode)
    for opset in ("99", "16"):
        refused(capsys, "opset", "train", "export", checkpoint, tmp_path / "m.onnx", "--opset", opset)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev.onnx", "target", "tiny.pt"] or \
        sorted(p.name for p in tmp_path.iterdir()) == ["dev.onnx", "target"]
    assert list(folder.iterdir()) == []


def test_export_needs_an_onnx_name(capsys, checkpoint, tmp_path):
    out = tmp_path / "names"
    out.mkdir()
    for name in ("student", "student.pt", "student.onnx.txt"):
        refused(capsys, "must end in .onnx", "train", "export", checkpoint, out / name)
    assert list(out.iterdir()) == []
    rc, _ = main_cli(capsys, "train", "export", checkpoint, out / "Student.ONNX")
    assert rc == 0 and (out / "Student.ONNX").stat().st_size > 1000


def test_export_on_a_full_disk_leaves_nothing(capsys, checkpoint, small_disk):
    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 200_000))
    refused(capsys, "no space left", "train", "export", checkpoint, small_disk / "m.onnx")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.fixture
def read_only_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], capture_output=True)


def test_read_only_targets(capsys, config, checkpoint, read_only_dir, tmp_path):
    ro = ("Read-only file system", "not writable")
    refused(capsys, ro, "train", "export", checkpoint, read_only_dir / "m.onnx")
    refused(capsys, ro, "train", "fit", config, "--out", read_only_dir / "run", "-q")
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = sorted(shared_path("portraits-soft", "images").iterdir())[0]
    (frames / "f1.png").symlink_to(photo)
    refused(capsys, ro, "train", "label", "--frames", frames, "--out", read_only_dir / "lab")


# -- label / adapt flags and teachers --------------------------------------------------------------

def test_label_flags_are_checked_before_the_teacher_loads(capsys, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for flags, fragment in ((["--every", "0"], "--every"), (["--min-agreement", "nan"], "--min-agreement"),
                            (["--min-person", "2"], "--min-person"), (["--max-frames", "-1"], "--max-frames")):
        refused(capsys, fragment, "train", "label", "--frames", frames, "--out", tmp_path / "o", *flags)
    refused(capsys, "--holdout", "train", "adapt", "--frames", frames, "--out", tmp_path / "a", "--holdout", "nan")
    assert not (tmp_path / "o").exists() and not (tmp_path / "a").exists()


def test_a_teacher_that_gives_nan_is_refused_not_agreed_with():
    from backdrop.train import TrainError
    from backdrop.train.teacher import label_frame

    frame = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(TrainError, match="NaN"):
        label_frame(lambda img: np.full(img.shape[:2], np.nan, np.float32), frame)
