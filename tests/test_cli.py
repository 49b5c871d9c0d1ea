"""The command line: real runs, and each bad input gives one clear line, exit 2, no output."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from backdrop.io.image import read_image
from conftest import shared_path
from media import make_clip


def run(*args, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "backdrop", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=env)


def assert_clear_error(res, needle: str):
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("backdrop: error:")]
    assert len(lines) == 1, res.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in res.stderr


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    d = tmp_path_factory.mktemp("sample")
    res = run("sample", d)
    assert res.returncode == 0, res.stderr
    return d / "astronaut.mp4", d / "background.jpg"


def test_readme_command_on_sample(sample, tmp_path):
    video, bg = sample
    out = tmp_path / "out.mp4"
    res = run("video", video, out, "--background", bg, "--quiet")
    assert res.returncode == 0, res.stderr
    from backdrop.io.video import VideoReader, probe

    assert probe(out)["frames"] == probe(video)["frames"] == 90
    assert probe(out)["has_audio"]
    # the corners (background) now come from background.jpg, the face is still the astronaut
    f_in = next(iter(VideoReader(video))).image.astype(int)
    f_out = next(iter(VideoReader(out))).image.astype(int)
    assert np.abs(f_out[:40, -60:] - f_in[:40, -60:]).mean() > 30
    assert np.abs(f_out[150:220, 260:330] - f_in[150:220, 260:330]).mean() < 8


def test_image_and_folder(tmp_path):
    src = shared_path("portraits-soft", "images")
    res = run("image", src, tmp_path / "out", "-b", "transparent", "-q")
    assert res.returncode == 0, res.stderr
    outs = sorted((tmp_path / "out").iterdir())
    assert len(outs) == 20
    first = read_image(outs[0])
    assert first.shape[:2] == (512, 512)
    from PIL import Image
    assert Image.open(outs[0]).mode == "RGBA"


def test_missing_input(tmp_path):
    res = run("video", tmp_path / "nope.mp4", tmp_path / "o.mp4")
    assert_clear_error(res, "input not found")
    assert not list(tmp_path.iterdir())


def test_corrupt_input_text_named_mp4(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("this is not a video\n" * 10)
    before = bad.read_bytes()
    res = run("video", bad, tmp_path / "o.mp4")
    assert_clear_error(res, "not a readable video")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4"]
    assert bad.read_bytes() == before


def test_truncated_video(tmp_path, sample):
    video, _ = sample
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(video.read_bytes()[: video.stat().st_size // 3])
    res = run("video", cut, tmp_path / "o.mp4")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4"]


def test_unsupported_background(tmp_path, sample):
    video, _ = sample
    res = run("video", video, tmp_path / "o.mp4", "--background", "sparkles")
    assert_clear_error(res, "unsupported background")
    assert not list(tmp_path.iterdir())


def test_output_equals_input(tmp_path, sample):
    video, _ = sample
    copy = tmp_path / "same.mp4"
    copy.write_bytes(video.read_bytes())
    res = run("video", copy, copy)
    assert_clear_error(res, "same file as the input")
    assert copy.read_bytes() == video.read_bytes()


def test_unwritable_output_dir(tmp_path, sample):
    video, _ = sample
    res = run("video", video, tmp_path / "missing-dir" / "o.mp4")
    assert_clear_error(res, "output folder does not exist")
    if os.geteuid() != 0:  # root can write anywhere; the permission case only means something otherwise
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        res = run("video", video, ro / "o.mp4")
        assert_clear_error(res, "not writable")


def test_transparent_into_mp4_is_refused(tmp_path, sample):
    video, _ = sample
    res = run("video", video, tmp_path / "o.mp4", "-b", "transparent")
    assert_clear_error(res, "transparent video needs")
    assert not list(tmp_path.iterdir())


def test_models_lists_cache():
    res = run("models")
    assert res.returncode == 0
    assert "selfie" in res.stdout and "selfie-landscape" in res.stdout and "cached" in res.stdout


def run_in_process(capsys, *args) -> subprocess.CompletedProcess:
    """``backdrop ARGS`` through ``cli.main`` in this process (fast: these fail before a model loads)."""
    from backdrop.cli import main

    rc = main([str(a) for a in args])
    return subprocess.CompletedProcess(args, rc, "", capsys.readouterr().err)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip")
    return make_clip(shared_path("clips", "talking-room-512x480.mp4"), d / "room.mp4", 10, (128, 120))


@pytest.mark.parametrize("flags, needle", [(("--preset", "superfast2"), "preset must be one of ultrafast, superfast"),
                                           (("--crf", "60"), "crf must be between 0 and 51")])
def test_bad_encoder_option_is_one_line_and_writes_nothing(tmp_path, capsys, small_clip, flags, needle):
    res = run_in_process(capsys, "video", small_clip, tmp_path / "o.mp4", *flags, "-q")
    assert_clear_error(res, needle)
    assert not list(tmp_path.iterdir())


def test_image_folder_into_an_image_name_is_refused(tmp_path, capsys):
    src = shared_path("portraits-soft", "images")
    res = run_in_process(capsys, "image", src, tmp_path / "out.png", "-q")
    assert_clear_error(res, "must be a folder, not an image file name")
    assert not list(tmp_path.iterdir())
    # an existing file of any name is refused too, and left as it was
    existing = tmp_path / "out"
    existing.write_bytes(b"keep me")
    res = run_in_process(capsys, "image", src, existing, "-q")
    assert_clear_error(res, "must be a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and existing.read_bytes() == b"keep me"
