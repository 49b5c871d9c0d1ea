"""A corrupt cached model is detected and fetched again; a bad source of models is a clear error.

No network: the "PyPI wheel" is a local zip holding the two real model files under their
official member names (copied from the user's cache), pointed to by BACKDROP_MEDIAPIPE_WHEEL,
and BACKDROP_MODEL_DIR points at a fresh folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backdrop.models.registry import DEFAULT_FETCH, fetch, sha256_of
from conftest import shared_path


def run_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backdrop", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def one_error(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("backdrop: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    real = dict(zip(DEFAULT_FETCH, fetch(quiet=True)))
    w = tmp_path_factory.mktemp("wheel") / "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(w, "w") as z:
        for name, km in DEFAULT_FETCH.items():
            z.write(real[name], km.member)
        z.writestr("mediapipe/__init__.py", "")
    return w


@pytest.fixture
def photo() -> Path:
    return shared_path("portraits-soft", "images", "WechatIMG253_2.png")


def test_corrupt_cached_model_is_refetched(tmp_path, wheel, photo):
    mdir = tmp_path / "models"
    mdir.mkdir()
    garbage = mdir / DEFAULT_FETCH["selfie"].filename
    garbage.write_bytes(b"\0" * 1000)  # a truncated / zeroed download
    out = tmp_path / "out.png"
    proc = run_cli("image", str(photo), str(out), "-b", "#00b140",
                   env={"BACKDROP_MODEL_DIR": str(mdir), "BACKDROP_MEDIAPIPE_WHEEL": str(wheel)})
    assert proc.returncode == 0, proc.stderr
    assert "corrupt" in proc.stderr and "fetching" in proc.stderr
    assert sha256_of(garbage) == DEFAULT_FETCH["selfie"].sha256
    assert out.is_file()
    assert not [p.name for p in mdir.iterdir() if p.name.endswith(".part")]


def test_model_cache_with_a_bad_wheel_is_a_clear_error(tmp_path, photo):
    mdir = tmp_path / "models"
    mdir.mkdir()
    (mdir / DEFAULT_FETCH["selfie"].filename).write_bytes(b"corrupt")
    bad = tmp_path / "mediapipe-bad.whl"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {"BACKDROP_MODEL_DIR": str(mdir), "BACKDROP_MEDIAPIPE_WHEEL": str(bad)}
    line = one_error(run_cli("image", str(photo), str(out_dir / "o.png"), "-q", env=env))
    assert "not a readable wheel" in line
    # a wheel whose member has the wrong bytes: the sha256 check refuses it
    wrong = tmp_path / "mediapipe-wrong.whl"
    with zipfile.ZipFile(wrong, "w") as z:
        for km in DEFAULT_FETCH.values():
            z.writestr(km.member, b"not the model")
    env["BACKDROP_MEDIAPIPE_WHEEL"] = str(wrong)
    line = one_error(run_cli("image", str(photo), str(out_dir / "o.png"), "-q", env=env))
    assert "sha256 mismatch" in line
    assert list(out_dir.iterdir()) == []
    assert sorted(p.name for p in mdir.iterdir() if not p.name.startswith(".fetch")) == [DEFAULT_FETCH["selfie"].filename]


def test_model_dir_that_cannot_be_created(tmp_path, photo):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    line = one_error(run_cli("image", str(photo), str(out_dir / "o.png"), "-q",
                             env={"BACKDROP_MODEL_DIR": str(blocker / "models")}))
    assert "model cache" in line and "BACKDROP_MODEL_DIR" in line
    assert list(out_dir.iterdir()) == []


def test_corrupt_model_file_given_by_path(tmp_path, photo):
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"TFL3" + os.urandom(2000))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    line = one_error(run_cli("image", str(photo), str(out_dir / "o.png"), "-q", "--model", str(bad), env={}))
    assert "broken.tflite" in line
    assert list(out_dir.iterdir()) == []
