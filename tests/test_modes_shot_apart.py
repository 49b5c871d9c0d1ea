"""Clean plate, ghost trail and key where the footage is not as we made it (issue 21).

A plate shot apart from the video (another exposure or white balance, its own sensor noise), a
plate of another view, ``--plate learn`` with nothing to learn from, a camera that changes size
while learning, a person crossing a still background, a green screen with a fold and a cast
shadow, and the shared real static camera (``clips-extra/one-by-one-person-detection.mp4``). Every case failed on the code before issue 21; the margins are measured ones
(docs/quality.md, "Issue 21").
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from backdrop import Pipeline, PipelineOptions
from backdrop.errors import InputError
from backdrop.evaluate.synthetic import green_screen_set, sliding_clip
from conftest import shared_path
from media import write_video
from test_hardening_files import one_error_line, run_cli


def people():
    return shared_path("portraits-soft", "images"), shared_path("portraits-soft", "masks")


def write_rgb(path, image) -> str:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return str(path)


def clip_mad(pipe, clip) -> float:
    mattes = [m for _, m, _ in pipe.stream(clip.frames)]
    return float(np.mean([np.abs(m - t).mean() for m, t in zip(mattes, clip.alphas)]))


@pytest.mark.parametrize("shot", [
    dict(seed=0, plate_gain=1.02, plate_noise=2.0, noise=2.0),  # +2 % exposure and noise: the case
    dict(seed=2, plate_gain=(1.03, 1.0, 0.97), plate_noise=1.5, noise=1.5),  # another white balance
], ids=["exposure", "white-balance"])
def test_plate_shot_apart_halves_the_error(shared, segmenter, tmp_path, shot):
    """Before: 0.54x and 0.62x of the raw network (40 frames); now 0.43x and 0.40x."""
    clip = sliding_clip(*people(), shared_path("backgrounds"), frames=20, **shot)
    assert clip.shot_plate is not None and not np.array_equal(clip.user_plate, clip.plate)
    plate = write_rgb(tmp_path / "plate.png", clip.user_plate)
    raw = clip_mad(Pipeline(background="matte", segmenter=segmenter, options=PipelineOptions.raw()), clip)
    with_plate = clip_mad(Pipeline(background="matte", segmenter=segmenter, plate=plate), clip)
    assert with_plate <= 0.5 * raw, (with_plate, raw)


def test_plate_of_another_aspect_names_both_sizes(shared, segmenter, tmp_path):
    """Before: cropped to cover and then called "camera or light moved"."""
    clip = sliding_clip(*people(), shared_path("backgrounds"), seed=0, frames=2)
    frame = write_rgb(tmp_path / "frame.png", clip.frames[1])  # 640x360
    h, w = clip.plate.shape[:2]
    square = write_rgb(tmp_path / "square.png", clip.plate[:, (w - h) // 2:(w + h) // 2])
    out = tmp_path / "out.png"
    line = one_error_line(run_cli("image", frame, str(out), "--background", "matte", "--plate", square, "--quiet"),
                          "360x360", "640x360", "aspect")
    assert "moved" not in line and not out.exists()
    # the same view at another size is a plate, not an error
    half = write_rgb(tmp_path / "half.png", cv2.resize(clip.plate, (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    matte = Pipeline(background="matte", segmenter=segmenter, plate=half).matte(clip.frames[1])
    assert np.abs(matte - clip.alphas[1]).mean() < 0.03
    with pytest.raises(InputError, match="aspect"):
        Pipeline(background="matte", segmenter=segmenter, plate=square).matte(clip.frames[1])


def test_plate_learn_needs_frames_to_learn_from(shared, tmp_path):
    """Before: a picture or a 2-frame clip with ``--plate learn`` ran as if no plate was asked for."""
    clip = sliding_clip(*people(), shared_path("backgrounds"), seed=0, frames=2, size=(160, 96))
    image = write_rgb(tmp_path / "frame.png", clip.frames[1])
    one_error_line(run_cli("image", image, str(tmp_path / "out.png"), "--plate", "learn", "--quiet"),
                   "--plate learn", "one picture")
    video = write_video(tmp_path / "two.mp4", clip.frames, audio=False)
    one_error_line(run_cli("video", str(video), str(tmp_path / "out.mp4"), "--plate", "learn", "--quiet"),
                   "--plate learn", "2 frames")
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.mp4").exists()


def test_plate_learning_starts_again_when_the_camera_changes_size(shared, segmenter):
    """Before: frames of two sizes were averaged into one plate (a ValueError mid-stream)."""
    from backdrop.live import LiveProcessor, LiveSettings

    clip = sliding_clip(*people(), shared_path("backgrounds"), seed=0, frames=2)
    proc = LiveProcessor(LiveSettings(background="matte"),
                         pipeline=Pipeline(background="matte", segmenter=segmenter, live=True))
    proc.update({"plate": "learn"})
    small = cv2.resize(clip.plate, (320, 180), interpolation=cv2.INTER_AREA)
    for _ in range(4):
        proc(small)
    for _ in range(10):  # the camera switched to 640x360 while learning
        out = proc(clip.plate)
        assert out.shape[:2] == (360, 640)
    stage = next(s for s in proc.pipeline.stages if s.spec.name == "plate")
    assert stage.source is not None and stage.source.shape == clip.plate.shape
    assert np.abs(stage.source.astype(int) - clip.plate).mean() < 1.0  # learnt from the new size only
    matte = proc.pipeline.matte(clip.frames[1])
    assert np.abs(matte - clip.alphas[1]).mean() < 0.03


def test_no_trail_behind_a_person_crossing_a_still_background(shared, segmenter):
    """Before: the default kept a faint remainder behind the person, worse than the raw network."""
    clip = sliding_clip(*people(), shared_path("backgrounds"), seed=2, frames=30)
    raw = clip_mad(Pipeline(background="matte", segmenter=segmenter, options=PipelineOptions.raw()), clip)
    default = clip_mad(Pipeline(background="matte", segmenter=segmenter), clip)
    assert default <= raw, (default, raw)


def test_key_holds_on_a_folded_shadowed_screen(shared, segmenter):
    """Uneven light, a crease in the cloth and the person's own shadow beside them."""
    screen = green_screen_set(*people(), limit=6, seed=0, fold=0.3, shadow=0.4, spill_edge=0.15)
    network = keyed = 0.0
    for it in screen.items:
        network += np.abs(Pipeline(background="matte", segmenter=segmenter).matte(it.image) - it.alpha).mean()
        keyed += np.abs(Pipeline(background="matte", segmenter=segmenter, key="green").matte(it.image) - it.alpha).mean()
    assert keyed < KEY_RATIO * network, (keyed, network)


KEY_RATIO = 0.38  # these 6 pictures: 0.43x before, 0.34x now; the third is not reached on all 40 (docs/quality.md)


def test_plate_holds_on_a_real_static_camera(shared, segmenter):
    """The shared one-by-one clip (a real camera; the plate is its first frame). Before: the
    exposure drifted enough from the first frame that the plate stepped aside for whole stretches
    (frames 270-310 and 580-620: "camera or light moved"), and where it held, each person's shadow
    on the floor was kept as a blot at their feet (frame 1300: 5246 px; now 1127)."""
    from backdrop.io.video import VideoReader

    clip = shared_path("clips-extra", "one-by-one-person-detection.mp4")
    plate = str(shared_path("clips-extra", "one-by-one-person-detection-plate.png"))
    walking, standing = [], []
    reader = VideoReader(clip)
    for i, frame in enumerate(reader):
        if 270 <= i <= 280:
            walking.append(frame.image)
        elif 1292 <= i <= 1300:
            standing.append(frame.image)
        elif i > 1300:
            break
    reader.close()
    pipe = Pipeline(background="matte", segmenter=segmenter, plate=plate)
    stage = next(s for s in pipe.stages if s.spec.name == "plate")
    fits = [stage.fits for _ in pipe.stream(walking)]
    assert all(fits), fits
    with_plate = [m for _, m, _ in Pipeline(background="matte", segmenter=segmenter, plate=plate).stream(standing)][-1]
    network = [m for _, m, _ in Pipeline(background="matte", segmenter=segmenter).stream(standing)][-1]
    floor = np.zeros_like(network, bool)
    floor[300:] = True  # below the table top: the floor around the feet
    blot = (with_plate > 0.3) & (network < 0.05) & floor
    assert blot.sum() < 2500, int(blot.sum())
    person = network > 0.95
    assert person.sum() > 5000 and with_plate[person].mean() > 0.98  # the person is still whole
