"""The shared decode -> per-frame function -> encode loop, and the encoder-option checks.

Real frames from a shared clip; the loop is driven without a pipeline (a plain per-frame
function), so these tests are about the loop itself: same bytes with or without threads,
nothing left behind on failure, no thread left running, options refused before a file exists.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backdrop.errors import InputError, OptionError, OutputError
from backdrop.io.transcode import EncodeSettings, transcode
from backdrop.io.video import VideoReader, validate_encoder_options
from conftest import shared_path
from media import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("transcode")
    return make_clip(shared_path("clips", "outdoor-seated-640x360.mp4"), d / "outdoor.mp4", 12, (160, 90))


def inverted(frames):
    return ((f.pts, 255 - f.image) for f in frames)


def settings_for(reader, **kw):
    return EncodeSettings(rate=reader.rate, time_base=reader.time_base, **kw)


def no_loop_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name in ("backdrop-prefetch", "backdrop-writer")]


def test_same_bytes_with_and_without_threads(clip, tmp_path):
    outs, counted = [], []
    for overlap in (False, True):
        reader = VideoReader(clip)
        dst = tmp_path / f"o{int(overlap)}.mp4"
        stats = transcode(reader, dst, settings_for(reader, crf=10, preset="ultrafast"), inverted,
                          overlap=overlap, on_frame=counted.append)
        assert stats.frames == 12 and (stats.width, stats.height) == (160, 90)
        outs.append(dst.read_bytes())
    assert outs[0] == outs[1]
    assert counted == list(range(1, 13)) * 2
    src = [f.image for f in VideoReader(clip)]
    got = [f.image for f in VideoReader(tmp_path / "o0.mp4")]
    assert len(got) == len(src)
    assert np.abs(got[5].astype(int) - (255 - src[5].astype(int))).mean() < 4
    assert no_loop_threads()


@pytest.mark.parametrize("overlap", [False, True])
def test_failure_mid_stream_leaves_nothing(clip, tmp_path, overlap):
    def breaks_at_frame_5(frames):
        for i, (pts, img) in enumerate(inverted(frames)):
            if i == 5:
                raise InputError("frame 5 is bad")
            yield pts, img

    reader = VideoReader(clip)
    with pytest.raises(InputError, match="frame 5 is bad"):
        transcode(reader, tmp_path / "o.mp4", settings_for(reader), breaks_at_frame_5, overlap=overlap)
    reader.close()
    assert not list(tmp_path.iterdir())
    assert no_loop_threads()


@pytest.mark.parametrize("fails", [False, True])
def test_an_overlapped_job_shares_opencvs_pool_and_gives_it_back(clip, tmp_path, monkeypatch, fails):
    """While the loop's own threads keep the cores busy, OpenCV's pool gets what is left
    (one thread here, with 2 CPUs); after the job, finished or failed, it is as it was."""
    import cv2

    from backdrop.io import threaded

    monkeypatch.setattr(threaded, "usable_cpus", lambda: 2)
    before = cv2.getNumThreads()
    seen = []

    def watching(frames):
        for i, (pts, img) in enumerate(inverted(frames)):
            seen.append(cv2.getNumThreads())
            if fails and i == 3:
                raise InputError("frame 3 is bad")
            yield pts, img

    reader = VideoReader(clip)
    try:
        transcode(reader, tmp_path / "o.mp4", settings_for(reader), watching, overlap=True)
    except InputError:
        assert fails
    assert seen and set(seen) == {1}
    assert cv2.getNumThreads() == before


def test_a_one_thread_job_leaves_opencvs_pool_alone(clip, tmp_path):
    """Without the loop's threads (``overlap=False``, the live paths) OpenCV keeps its pool."""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    seen = []

    def watching(frames):
        for pts, img in inverted(frames):
            seen.append(cv2.getNumThreads())
            yield pts, img

    try:
        reader = VideoReader(clip)
        transcode(reader, tmp_path / "o.mp4", settings_for(reader), watching, overlap=False)
        assert seen and set(seen) == {2}
    finally:
        cv2.setNumThreads(before)


def test_nothing_to_write_raises_the_given_error(clip, tmp_path):
    reader = VideoReader(clip)
    with pytest.raises(OutputError, match="nothing kept"):
        transcode(reader, tmp_path / "o.mp4", settings_for(reader), lambda frames: iter(()),
                  empty=OutputError("nothing kept"))
    reader.close()
    assert not list(tmp_path.iterdir())


def test_encode_timer_wraps_every_frame(clip, tmp_path):
    from backdrop.timing import StageTimer

    timer = StageTimer()
    reader = VideoReader(clip)
    transcode(reader, tmp_path / "o.mp4", settings_for(reader), inverted, overlap=True, timer=timer)
    assert len(timer.samples["encode"]) == 12


@pytest.mark.parametrize("crf, preset, needle", [(52, "veryfast", "crf must be between 0 and 51, got 52"),
                                                 (-1, "veryfast", "crf must be between 0 and 51"),
                                                 ("20", "veryfast", "crf must be between 0 and 51"),
                                                 (20, "superfast2", "preset must be one of ultrafast, "),
                                                 (20, None, "preset must be one of")])
def test_encoder_options_are_checked_before_any_file(clip, tmp_path, crf, preset, needle):
    with pytest.raises(OptionError, match=needle) as err:
        validate_encoder_options(crf, preset)
    assert "\n" not in str(err.value)
    from backdrop import process_video

    with pytest.raises(OptionError, match=needle):
        process_video(clip, tmp_path / "o.mp4", crf=crf, preset=preset, quiet=True)
    assert not list(tmp_path.iterdir())


def test_every_x264_preset_is_accepted():
    for preset in ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                   "veryslow", "placebo"):
        validate_encoder_options(0, preset)
        validate_encoder_options(51, preset)


def test_image_folder_output_checks(tmp_path):
    from backdrop import process_image

    src = shared_path("portraits-soft", "images")
    for name in ("out.png", "out.JPG", "x.webp"):
        with pytest.raises(OutputError, match="not an image file name"):
            process_image(src, tmp_path / name, quiet=True)
    assert not list(tmp_path.iterdir())
