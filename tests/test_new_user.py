"""What a new user hit (issue 10, section 3), each on real pixels or the real command line."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from backdrop.compose.backgrounds import BackgroundSpec
from backdrop.compose.backgrounds.presenter import PresenterBackground
from backdrop.errors import BackdropError
from backdrop.io.video import VideoReader, probe
from conftest import shared_path
from media import make_clip
from test_cli import assert_clear_error, run_in_process

SRC = Path(__file__).resolve().parents[1] / "src" / "backdrop"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """20 frames of the shared 512x480 talking-room clip, at its own size."""
    d = tmp_path_factory.mktemp("room")
    return make_clip(shared_path("clips", "talking-room-512x480.mp4"), d / "room.mp4", 20, (512, 480))


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    """Two 16:9 pages: red, then blue."""
    from PIL import Image

    pages = [Image.new("RGB", (640, 360), c) for c in ((250, 0, 0), (0, 0, 250))]
    path = tmp_path_factory.mktemp("slides") / "talk.pdf"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    return path


def test_pdf_without_slide_times_spreads_pages_over_the_video(tmp_path, capsys, clip, pdf):
    out = tmp_path / "talk.mp4"
    res = run_in_process(capsys, "video", clip, out, "--background", pdf, "--presenter", "corner", "-q")
    assert res.returncode == 0, res.stderr
    frames = [f.image for f in VideoReader(out)]
    assert len(frames) == 20
    # top-left corner of the slide (never the person): red in the first half, blue in the second
    first, last = frames[2][10:30, 10:30].mean(axis=(0, 1)), frames[-2][10:30, 10:30].mean(axis=(0, 1))
    assert first[0] > 180 and first[2] < 80 and last[2] > 180 and last[0] < 80


def test_presenter_output_takes_the_slides_aspect_or_the_given_size(tmp_path, capsys, clip, pdf):
    out = tmp_path / "wide.mp4"
    assert run_in_process(capsys, "video", clip, out, "-b", pdf, "--presenter", "left", "-q").returncode == 0
    info = probe(out)
    assert (info["width"], info["height"]) == (854, 480)  # 16:9 at the video's height: no black bars
    frame = next(iter(VideoReader(out))).image
    assert frame[:, -20:, 0].mean() > 150  # the right edge is slide (red), not a letterbox bar (16)
    sized = tmp_path / "sized.mp4"
    assert run_in_process(capsys, "video", clip, sized, "-b", pdf, "--presenter", "left", "--output-size",
                          "640x360", "-q").returncode == 0
    assert (probe(sized)["width"], probe(sized)["height"]) == (640, 360)


def test_presenter_right_keeps_the_whole_person_in_the_frame(tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.full((90, 160, 3), 230, np.uint8))
    bg = PresenterBackground(tmp_path, "right")
    alpha = np.zeros((480, 512), np.float32)
    cv2.ellipse(alpha, (256, 300), (200, 180), 0, 0, 360, 1.0, -1)  # a wide person: head and shoulders
    moved = cv2.warpAffine(alpha, bg.person_transform(alpha), (512, 480))
    cols = np.nonzero(moved.max(axis=0) > 0.5)[0]
    assert cols.max() < 512 - 5  # the shoulder (ear, hair) is not cut at the right edge
    assert moved.sum() == pytest.approx(alpha.sum() * 0.6 ** 2, rel=0.03)  # all of them, scaled
    assert cols.min() > 512 / 2  # still on the right


@pytest.mark.parametrize("args, needle", [
    (("--presenter", "corner"), "--presenter needs slides"),
    (("--background", "{pdf}", "--presenter", "corner", "--slide-times", "5,0"), "slide times must be increasing"),
    (("--background", "{pdf}", "--presenter", "corner", "--slide-times", "0,1,2"), "3 slide times for 2 slides"),
    (("--background", "{pdf}", "--presenter", "middle"), "presenter place must be corner, left, right"),
    (("--slide-times", "0,5"), "--slide-times goes with --presenter"),
])
def test_presenter_mistakes_are_one_clear_line(tmp_path, capsys, clip, pdf, args, needle):
    args = [a.format(pdf=pdf) for a in args]
    res = run_in_process(capsys, "video", clip, tmp_path / "o.mp4", *args, "-q")
    assert_clear_error(res, needle)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["batch", "bench"])
def test_batch_and_bench_refuse_presenter_flags_they_would_ignore(tmp_path, capsys, command):
    places = (tmp_path, tmp_path / "out") if command == "batch" else (tmp_path / "clip.mp4",)
    res = run_in_process(capsys, command, *places, "--presenter", "corner", "--slide-times", "0,5")
    assert_clear_error(res, "unrecognized arguments: --presenter corner --slide-times 0,5")


def test_presenter_spec_round_trips_and_is_what_live_stores(pdf):
    text = f"presenter:right;times=0,30;size=1280x720:{pdf}"
    spec = BackgroundSpec.parse(text)
    assert spec.kind == "presenter" and spec.params["times"] == [0.0, 30.0] and spec.params["size"] == (1280, 720)
    assert BackgroundSpec.parse(spec.format()) == spec
    assert spec.files() == [pdf]
    from backdrop.live.settings import check_background

    assert check_background(text, allow_files=True) == text  # camera --presenter: a spec the parser takes
    with pytest.raises(BackdropError):
        check_background(text, allow_files=False)  # never from a web page


def help_of(capsys, *command) -> str:
    from backdrop.cli import main

    assert main([*command, "--help"]) == 0
    return capsys.readouterr().out


def test_help_lists_only_flags_that_do_something(capsys):
    image = help_of(capsys, "image")
    for flag in ("--temporal", "--no-delay", "--no-skip", "--max-skip", "--redetect-every"):
        assert flag not in image  # one photo: nothing happens between frames
    assert "--no-roi" in image and "--refine" in image
    evaluate = help_of(capsys, "eval")
    for flag in ("--background", "--light-wrap", "--colour-match", "--no-decontaminate", "--presenter"):
        assert flag not in evaluate  # eval scores mattes: compositing does nothing there
    assert "--temporal" in evaluate and "(default 0.93)" in evaluate  # defaults printed from the declaration
    assert 'pip install -e ".[web]"' in help_of(capsys, "serve")
    assert 'pip install -e ".[live]"' in help_of(capsys, "camera")


def test_install_hints_use_the_readme_wording():
    readme = (SRC.parents[1] / "README.md").read_text()
    assert 'pip install -e ".[slides]"' in readme
    offenders = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if re.search(r"pip install '?backdrop\[",
                                                                               p.read_text())]
    assert offenders == []


def test_mistyped_flag_gets_a_suggestion(tmp_path, capsys, clip):
    res = run_in_process(capsys, "video", clip, tmp_path / "o.mp4", "--backgrund", "#00ff00")
    assert_clear_error(res, "did you mean --background?")
    res = run_in_process(capsys, "video", clip, tmp_path / "o.mp4", "--temporal", "1.5")
    assert_clear_error(res, "--temporal must be a number in [0, 1)")  # the flag, not the field name


def test_library_errors_name_library_arguments():
    from backdrop import Pipeline
    from backdrop.errors import OptionError

    with pytest.raises(OptionError) as err:
        Pipeline(background="#000000", work_size=10)
    assert str(err.value).startswith("work_size must be") and "--" not in str(err.value)


def test_keep_faces_works_without_a_face_in_view(segmenter):
    """--keep faces uses BlazeFace now (OpenCV 5 dropped the Haar cascade): it works on any
    OpenCV, and a frame without a face keeps everything rather than failing."""
    from backdrop import Pipeline

    frame = np.full((120, 160, 3), 90, np.uint8)
    assert Pipeline(background="matte", segmenter=segmenter, keep="faces").matte(frame).shape == (120, 160)