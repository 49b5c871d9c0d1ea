"""``backdrop camera``: the fake camera, the virtual-camera pixel formats, reader detection, the
clear errors when a camera or v4l2loopback is missing, and the command end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from backdrop.errors import BackdropError
from backdrop.io.camera import CameraError, FileCamera, open_camera, write_y4m
from backdrop.io.video import VideoReader, probe
from backdrop.io.virtualcam import (MODPROBE, FileSink, MultiSink, VirtualCameraError, VirtualCamSink,
                                    check_virtual_camera, device_readers, rgb_to_i420, rgb_to_yuyv)
from conftest import shared_path

CLIP = ("clips", "outdoor-seated-640x360.mp4")


def run_cli(*args, timeout=120):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "backdrop", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def error_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("backdrop: error:")]
    assert res.returncode == 2 and len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


# -- the fake camera ----------------------------------------------------------------------------------
def test_file_camera_gives_the_clip_frames_in_order(shared):
    cam = FileCamera(shared_path(*CLIP), realtime=False, limit=5)
    ref = [f.image for _, f in zip(range(5), VideoReader(shared_path(*CLIP)))]
    got = [cam.read() for _ in range(6)]
    assert got[5] is None
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)


def test_file_camera_keeps_real_time_and_skips_what_nobody_read(shared):
    cam = FileCamera(shared_path(*CLIP), fps=50, realtime=True)
    t0 = time.perf_counter()
    for _ in range(10):
        cam.read()
    elapsed = time.perf_counter() - t0
    assert 0.15 < elapsed < 0.6  # 10 frames at 50 fps: ~0.18 s, not as fast as decoding
    time.sleep(0.2)  # a slow consumer: ~10 frames went by on the "sensor"
    cam.read()
    assert cam.skipped >= 5
    cam.close()


def test_file_camera_loops_and_resizes(shared, tmp_path):
    frames = [f.image for _, f in zip(range(3), VideoReader(shared_path(*CLIP)))]
    y4m = write_y4m(tmp_path / "c.y4m", frames, fps=30)
    assert y4m.read_bytes().startswith(b"YUV4MPEG2 W640 H360 F30:1")
    cam = open_camera(f"file:{y4m}", width=320, height=180, realtime=False, loop=True, limit=7)
    got = [cam.read() for _ in range(8)]
    assert all(g.shape == (180, 320, 3) for g in got[:7]) and got[7] is None
    # y4m round trip: the fake camera gets back what was written (I420 loss only)
    assert np.abs(cv2.resize(frames[1], (320, 180)).astype(int) - got[4].astype(int)).mean() < 6


ROOM = ("clips", "talking-room-512x480.mp4")  # 16:15, far from the 16:9 a camera is asked for


def test_file_camera_covers_instead_of_stretching(shared):
    """A 512x480 clip asked for at 1280x720 is scaled to cover and centre-cropped, as a webcam
    would, not stretched 2.5x wide and 1.5x high."""
    from backdrop.compose.backgrounds import cover_resize

    src = [f.image for _, f in zip(range(3), VideoReader(shared_path(*ROOM)))]
    assert src[0].shape == (480, 512, 3)
    cam = open_camera(shared_path(*ROOM), width=1280, height=720, realtime=False, limit=3)
    assert cam.size == (1280, 720)
    got = [cam.read() for _ in range(3)]
    for frame, img in zip(src, got):
        assert img.shape == (720, 1280, 3)
        want = cover_resize(frame, 1280, 720)
        assert np.abs(img.astype(int) - want.astype(int)).mean() < 2
        stretched = cv2.resize(frame, (1280, 720), interpolation=cv2.INTER_LINEAR)
        assert np.abs(img.astype(int) - stretched.astype(int)).mean() > 8  # the test tells them apart
    # a smaller, taller ask crops the sides instead
    cam = open_camera(shared_path(*ROOM), width=240, height=320, realtime=False, limit=1)
    img = cam.read()
    assert img.shape == (320, 240, 3)
    assert np.abs(img.astype(int) - cover_resize(src[0], 240, 320).astype(int)).mean() < 3


def _disc_clip(path: Path, frames: int = 4) -> Path:
    """The real 512x480 room clip with a solid magenta disc (radius 100) drawn in the middle."""
    from media import write_video

    imgs = [f.image.copy() for _, f in zip(range(frames), VideoReader(shared_path(*ROOM)))]
    for img in imgs:
        cv2.circle(img, (256, 240), 100, (255, 0, 255), -1, lineType=cv2.LINE_AA)
    return write_video(path, imgs, fps=25, audio=False)


def _disc_box(img: np.ndarray) -> tuple[int, int]:
    """Width and height of the magenta region."""
    px = img.astype(int)
    mask = (px[..., 0] > 200) & (px[..., 2] > 200) & (px[..., 1] < 60)
    ys, xs = np.nonzero(mask)
    assert len(xs) > 1000, "disc not found"
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_camera_command_keeps_a_file_cameras_aspect(shared, tmp_path):
    """End to end: ``backdrop camera --device clip.mp4`` (effect off, recorded) shows a round
    disc as round at the 16:9 size asked for, scaled by the cover factor."""
    clip = _disc_clip(tmp_path / "disc.mp4")
    out = tmp_path / "rec.mp4"
    res = run_cli("camera", "--device", clip, "--width", "640", "--height", "360", "--output", out,
                  "--frames", "3", "--no-effect", "--stats", "0", "--quiet")
    assert res.returncode == 0, res.stderr
    frames = [f.image for f in VideoReader(out)]
    assert len(frames) == 3 and frames[0].shape == (360, 640, 3)
    w, h = _disc_box(frames[-1])
    assert abs(w / h - 1) < 0.06, (w, h)  # stretched it would be 1.25 / 0.75 = 1.67 wide
    assert abs(w - 201 * 1.25) < 10, (w, h)  # cover scale: max(640/512, 360/480) = 1.25


def test_missing_camera_is_a_clear_error(tmp_path):
    with pytest.raises(CameraError, match="not found or busy"):
        open_camera("/dev/video97")
    with pytest.raises(BackdropError, match="not found"):
        open_camera(tmp_path / "nope.mp4")
    with pytest.raises(CameraError, match="fps"):
        open_camera(0, fps=0)


# -- the virtual camera -------------------------------------------------------------------------------
def test_pixel_formats_round_trip(shared):
    whole = next(iter(VideoReader(shared_path(*CLIP)))).image
    # the clip's own size, and a height of 2 mod 4 (the chroma planes then end mid-row of I420)
    for frame in (whole, np.ascontiguousarray(whole[:whole.shape[0] // 4 * 4 - 2])):
        h, w = frame.shape[:2]
        yuyv = rgb_to_yuyv(frame)
        i420 = rgb_to_i420(frame)
        assert yuyv.size == w * h * 2 and i420.size == w * h * 3 // 2
        back_yuyv = cv2.cvtColor(yuyv.reshape(h, w, 2), cv2.COLOR_YUV2RGB_YUY2)
        back_i420 = cv2.cvtColor(i420.reshape(h * 3 // 2, w), cv2.COLOR_YUV2RGB_I420)
        for back in (back_yuyv, back_i420):
            assert np.abs(back.astype(int) - frame.astype(int)).mean() < 4
        # same matrix, same range: both formats show the same colours
        assert np.abs(back_yuyv.astype(int) - back_i420.astype(int)).mean() < 2
    green = np.zeros((4, 4, 3), np.uint8)
    green[:] = (0, 177, 64)
    y = rgb_to_yuyv(green)[0]
    assert 16 <= y <= 235  # limited range, as webcams deliver


def _expected_virtualcam_hint() -> str:
    """Without pyvirtualcam the hint is the pip line; with it (and no device), the modprobe line."""
    import importlib.util

    if importlib.util.find_spec("pyvirtualcam") is None:
        return 'pip install -e ".[live]"'
    return MODPROBE


def test_no_v4l2loopback_gives_the_modprobe_command():
    if sys.platform.startswith("linux") and Path("/sys/devices/virtual/video4linux").is_dir():
        pytest.skip("this machine has a v4l2loopback device")
    hint = _expected_virtualcam_hint()
    with pytest.raises(VirtualCameraError) as err:
        check_virtual_camera()
    assert hint in str(err.value) and "\n" not in str(err.value)
    sink = VirtualCamSink(30)
    with pytest.raises(VirtualCameraError) as err:
        sink.write(np.zeros((8, 8, 3), np.uint8))
    assert hint in str(err.value)


def test_cli_without_v4l2loopback_says_how_to_load_it(shared):
    if Path("/sys/devices/virtual/video4linux").is_dir():
        pytest.skip("this machine has a v4l2loopback device")
    res = run_cli("camera", "--device", shared_path(*CLIP), "--frames", "3")
    line = error_line(res)
    assert _expected_virtualcam_hint() in line
    assert MODPROBE == "sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=Backdrop"


def test_cli_missing_camera_is_one_line():
    res = run_cli("camera", "--device", "/dev/video93", "--no-virtual", "--output", "/tmp/never.mp4")
    assert "camera /dev/video93 not found" in error_line(res)
    assert not Path("/tmp/never.mp4").exists()


@pytest.mark.parametrize("device,quiet", [("/dev/video99", False), ("99", False), ("99", True)])
def test_cli_missing_camera_stderr_is_exactly_the_error_line(device, quiet, tmp_path):
    """Nothing but our one line: no TFLite INFO line, no OpenCV ``[ WARN ]`` lines from the
    V4L2 backend (an index goes through cv2.VideoCapture; a missing path is caught before)."""
    out = tmp_path / "never.mp4"
    res = run_cli("camera", "--device", device, "--no-virtual", "--output", out, *(["--quiet"] if quiet else []))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("backdrop: error:"), res.stderr
    assert "not found or busy" in lines[0]
    assert not out.exists()


def test_device_readers_sees_another_process_holding_the_device(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("reader detection is Linux-only")
    dev = tmp_path / "video10"
    dev.write_bytes(b"")
    assert device_readers(dev) == 0
    holder = subprocess.Popen([sys.executable, "-c", f"f = open({str(dev)!r}, 'rb'); import time; time.sleep(30)"])
    try:
        deadline = time.time() + 10
        while device_readers(dev) != 1 and time.time() < deadline:
            time.sleep(0.05)
        assert device_readers(dev) == 1
        with open(dev, "rb"):  # our own handle (the writer) never counts
            assert device_readers(dev) == 1
    finally:
        holder.kill()
        holder.wait()
    assert device_readers(dev) == 0
    assert device_readers(tmp_path / "missing") is None


def test_multisink_activity():
    class S:
        def __init__(self, active):
            self.active = active

        def write(self, *a):
            pass

        def close(self):
            pass

    assert MultiSink([S(False)]).active is False
    assert MultiSink([S(None)]).active is None
    assert MultiSink([S(False), S(True)]).active is True
    assert MultiSink([S(False), object.__new__(FileSink)]).active is True  # a recording is always watched


# -- the command, end to end ----------------------------------------------------------------------------
def test_camera_command_records_composited_frames(shared, tmp_path):
    out = tmp_path / "live.mp4"
    res = run_cli("camera", "--device", shared_path(*CLIP), "--width", "320", "--height", "180", "--fps", "30",
                  "--output", out, "--frames", "15", "--background", "#0000ff", "--stats", "0.5")
    assert res.returncode == 0, res.stderr
    assert "fps" in res.stderr and "latency p50" in res.stderr
    info = probe(out)
    assert info["frames"] == 15 and (info["width"], info["height"]) == (320, 180)
    frames = [f.image for f in VideoReader(out)]
    # the corners of this clip are background: now blue
    corner = frames[-1][:30, :30].reshape(-1, 3).astype(int)
    assert np.median(np.abs(corner - [0, 0, 255]).max(axis=1)) < 30
    assert not list(tmp_path.glob(".live.*"))  # no temp file left


def test_camera_command_bad_options_are_one_line(shared, tmp_path):
    clip = shared_path(*CLIP)
    assert "--queue" in error_line(run_cli("camera", "--device", clip, "--no-virtual", "--preview", "--queue", "0"))
    assert "nothing to show" in error_line(run_cli("camera", "--device", clip, "--no-virtual"))
    assert "alpha" in error_line(run_cli("camera", "--device", clip, "--output", tmp_path / "x.mp4",
                                         "--background", "transparent"))
    res = run_cli("camera", "--device", clip, "--output", tmp_path / "x.mp4", "--control", "99999")
    assert "control port" in error_line(res)


def test_camera_command_settings_change_while_running(shared, tmp_path):
    """End to end through the CLI: the camera runs, a POST to the control endpoint switches the
    background colour, and the recording shows the old colour first and the new one after."""
    import json
    import re
    import urllib.request

    out = tmp_path / "switch.mp4"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "backdrop", "camera", "--device", shared_path(*CLIP), "--loop",
                             "--width", "320", "--height", "180", "--output", out, "--duration", "6",
                             "--control", "0", "--background", "#0000ff", "--stats", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    url = None
    for _ in range(50):
        m = re.search(r"(http://127\.0\.0\.1:\d+/settings)", proc.stderr.readline())
        if m:
            url = m.group(1)
            break
    assert url, "no control address printed"
    time.sleep(2.0)
    req = urllib.request.Request(url, data=json.dumps({"colour": "#ff0000"}).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as res:
        assert json.loads(res.read())["settings"]["colour"] == "#ff0000"
    rest = proc.stderr.read()
    assert proc.wait(60) == 0, rest
    corners = [np.median(f.image[:20, :20].reshape(-1, 3), axis=0) for f in VideoReader(out)]
    assert len(corners) > 20
    assert np.abs(corners[0] - [0, 0, 255]).max() < 40
    assert np.abs(corners[-1] - [255, 0, 0]).max() < 40
