"""Hardening of file handling: image folders, stale temp files, truncated MKV/WebM, AVI, paths
with control characters, files removed mid-run, closed standard streams, inputs that are not
regular files, and videos whose picture size changes part-way.

Each case runs the real command line in a subprocess with a timeout (as tests/test_hostile_*.py
do) on real shared media; outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from media import clip_frames, make_clip

TIMEOUT = 60
CLIP = ("clips", "talking-indoor-512.mp4")


def run_cli(*args: str, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backdrop", *args], capture_output=True, text=True,
                          timeout=timeout, **kw)


def one_error_line(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit 2, no traceback, and the whole of stderr is one ``backdrop: error:`` line."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backdrop: error:"), proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """30 frames, 160x120, H.264 + AAC: a real shared clip, small enough for many runs."""
    d = tmp_path_factory.mktemp("clip")
    return make_clip(shared_path(*CLIP), d / "clip.mp4", 30, (160, 120))


@pytest.fixture(scope="module")
def frames60() -> list[np.ndarray]:
    return clip_frames(shared_path(*CLIP), 60, (160, 120))


def encode(path: Path, frames: list[np.ndarray], codec: str, fmt: str | None = None, rate: int = 30) -> Path:
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=rate)
        s.width, s.height = frames[0].shape[1], frames[0].shape[0]
        s.pix_fmt = "yuv420p"
        if codec == "libx264":
            s.options = {"preset": "ultrafast", "g": "10"}
        for img in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode(None))
    return path


def count_frames(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


# -- 1. image folders -----------------------------------------------------------------------------

def test_image_folder_no_overwrite_skips_hidden_and_reports_failures(tmp_path):
    photos = sorted(shared_path("portraits-soft", "images").iterdir())
    src = tmp_path / "in"
    src.mkdir()
    Image.open(photos[0]).convert("RGB").save(src / "a.jpg", quality=90)
    rgba = Image.open(photos[1]).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0))  # a transparent background
    rgba.save(src / "a.png")
    shutil.copy(photos[2], src / "c.png")
    (src / "._photo.png").write_bytes(b"\x00\x05\x16\x07" + b"\0" * 80)  # macOS AppleDouble metadata
    (src / ".c.k3j9x0ab.part.png").write_bytes((src / "c.png").read_bytes()[:300])  # a killed run's temp
    (src / "broken.png").write_bytes(b"not a png at all")
    out = tmp_path / "out"
    proc = run_cli("image", str(src), str(out), "-b", "transparent")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stderr  # one image failed
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg.png", "a.png", "c.png"]
    # a.png came from a.png (same size), a.jpg.png from a.jpg: nothing was overwritten
    assert Image.open(out / "a.png").size == rgba.size
    assert Image.open(out / "a.jpg.png").size == Image.open(src / "a.jpg").size
    assert "backdrop: failed: broken.png: not an image" in proc.stderr
    assert "wrote 3 image(s)" in proc.stderr and "1 failed" in proc.stderr
    assert "._photo" not in proc.stderr and ".part" not in proc.stderr


def test_image_folder_plan_outputs_unit(tmp_path):
    from backdrop.process import plan_outputs

    files = [tmp_path / n for n in ("a.jpg", "a.png", "a.jpeg", "b.bmp", "b.png")]
    names = [p.name for p in plan_outputs(files, tmp_path, "rgba")]
    assert names == ["a.jpg.png", "a.png", "a.jpeg.png", "b.bmp.png", "b.png"]
    assert len({n.lower() for n in names}) == len(names)
    assert [p.name for p in plan_outputs(files, tmp_path, "rgb")] == ["a.jpg", "a.png", "a.jpeg", "b.bmp", "b.png"]


# -- 2. stale temp files --------------------------------------------------------------------------

def test_stale_temp_files_of_ours_removed_on_next_run(clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    old = time.time() - 2 * 3600
    stale = out / ".o.ab12cd34.part.mp4"  # what SIGKILL / SIGHUP left (io/atomic.py naming)
    fresh = out / ".o.zz99yy88.part.mp4"  # another run may still be writing it
    locked = out / ".x.qq11ww22.part.mkv"  # old but locked by a live writer
    others = [out / ".o.part.mp4", out / "o.part.mp4", out / ".notes.txt", out / ".o.ab12cd34.part.mp4.keep",
              out / "holiday.ab12cd34.part.mp4"]
    for p in [stale, fresh, locked, *others]:
        p.write_bytes(b"x" * 100)
    for p in [stale, locked, *others]:
        os.utime(p, (old, old))
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'rb'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('ok', flush=True); time.sleep(60)", str(locked)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        proc = run_cli("video", str(clip), str(out / "o.mp4"), "-q", "-b", "#00b140")
        assert proc.returncode == 0, proc.stderr
    finally:
        holder.kill()
        holder.wait()
    left = sorted(p.name for p in out.iterdir())
    assert stale.name not in left
    assert sorted([fresh.name, locked.name, "o.mp4", *(p.name for p in others)]) == left


def test_remove_stale_temps_unit(tmp_path):
    from backdrop.io.atomic import atomic_output, is_own_temp_name, remove_stale_temps

    old = time.time() - 7200
    a = tmp_path / ".photo.x1y2z3a4.part.png"
    a.write_bytes(b"1")
    os.utime(a, (old, old))
    sub = tmp_path / ".dir.x1y2z3a4.part.png"  # a folder of that name is never removed
    sub.mkdir()
    os.utime(sub, (old, old))
    assert remove_stale_temps(tmp_path) == [a]
    assert sub.is_dir()
    with atomic_output(tmp_path / "live.png") as tmp:  # our own temp file holds a lock while writing
        assert is_own_temp_name(tmp.name)
        os.utime(tmp, (old, old))
        assert remove_stale_temps(tmp_path) == []
        tmp.write_bytes(b"done")
    assert (tmp_path / "live.png").read_bytes() == b"done"


# -- 4. truncated MKV / WebM ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix,codec,fmt", [(".mkv", "libx264", "matroska"), (".webm", "libvpx-vp9", "webm")])
def test_truncated_mkv_webm_warns_and_strict_refuses(frames60, tmp_path, suffix, codec, fmt):
    full = encode(tmp_path / f"full{suffix}", frames60, codec, fmt)
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    decoded = count_frames(cut)
    assert 5 < decoded < 55, decoded
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("video", str(cut), str(out / "o.mp4"), "-q", "-b", "#00b140")
    assert proc.returncode == 0, proc.stderr
    assert f"input cut{suffix} looks truncated or damaged" in proc.stderr, proc.stderr
    assert "of about 60 expected" in proc.stderr, proc.stderr
    assert count_frames(out / "o.mp4") == decoded
    (out / "o.mp4").unlink()
    strict = run_cli("video", str(cut), str(out / "o.mp4"), "-q", "-b", "#00b140", "--strict")
    one_error_line(strict, "looks truncated or damaged", "--strict")
    assert list(out.iterdir()) == []
    ok = run_cli("video", str(full), str(out / "o.mp4"), "-q", "-b", "#00b140", "--strict")
    assert ok.returncode == 0 and "truncated" not in ok.stderr, ok.stderr


# -- 5. AVI ---------------------------------------------------------------------------------------

def test_avi_output_refused_with_one_line(clip, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    proc = run_cli("video", str(clip), str(out / "o.avi"), "-q", "-b", "#00b140")
    one_error_line(proc, "cannot write .avi output", ".mp4")
    assert list(out.iterdir()) == []


def test_avi_input_works(frames60, tmp_path):
    avi = encode(tmp_path / "in.avi", frames60[:20], "mpeg4", "avi", rate=25)
    proc = run_cli("video", str(avi), str(tmp_path / "o.mp4"), "-q", "-b", "#00b140")
    assert proc.returncode == 0, proc.stderr
    with av.open(str(tmp_path / "o.mp4")) as c:
        s = c.streams.video[0]
        assert s.average_rate == Fraction(25)
        assert sum(1 for _ in c.decode(s)) == 20


# -- 6. one-line errors ---------------------------------------------------------------------------

def test_control_characters_in_paths_stay_on_one_line(tmp_path):
    bad = tmp_path / "evil\nname\x1b[31m.mp4"
    bad.write_text("not a video")
    line = one_error_line(run_cli("video", str(bad), str(tmp_path / "o.mp4"), "-q"), "evil\\nname\\x1b[31m.mp4")
    assert "\x1b" not in line
    one_error_line(run_cli("image", str(tmp_path / "no\nsuch.png"), str(tmp_path / "o.png"), "-q"),
                   "input not found", "no\\nsuch.png")


def test_camera_size_validated(clip, tmp_path):
    proc = run_cli("camera", "--device", str(clip), "--width", "100000", "--height", "100000",
                   "--output", str(tmp_path / "rec.mp4"), "--no-virtual")
    one_error_line(proc, "--width must be between 16 and 7680", "100000")
    one_error_line(run_cli("camera", "--device", str(clip), "--height", "0", "--output", str(tmp_path / "r.mp4")),
                   "--height")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def longer_clip(tmp_path_factory) -> Path:
    """150 frames at 256x240: about two seconds of work, long enough to interfere with."""
    d = tmp_path_factory.mktemp("longer")
    return make_clip(shared_path("clips", "talking-room-512x480.mp4"), d / "long.mp4", 150, (256, 240))


def _remove_mid_run(inp: Path, tmp_path: Path, what: str) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "backdrop", "video", str(inp), str(out / "o.mp4"), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    parts: list[Path] = []
    while time.time() - t0 < 60 and not parts:
        parts = [q for q in out.iterdir() if ".part" in q.name]
        time.sleep(0.02)
    time.sleep(0.1)
    assert p.poll() is None, "finished too early"
    if what == "temp":
        parts[0].unlink()
    else:
        shutil.rmtree(out)
    _, err = p.communicate(timeout=TIMEOUT)
    return subprocess.CompletedProcess(p.args, p.returncode, "", err)


def test_temp_file_deleted_mid_run(longer_clip, tmp_path):
    proc = _remove_mid_run(longer_clip, tmp_path, "temp")
    one_error_line(proc, "o.mp4", "removed")
    assert list((tmp_path / "out").iterdir()) == []


def test_output_folder_deleted_mid_run(longer_clip, tmp_path):
    proc = _remove_mid_run(longer_clip, tmp_path, "folder")
    one_error_line(proc, "removed")
    assert not (tmp_path / "out").exists()


class _RemovesOutputAfter:
    """A real pipeline that deletes the output folder once ``after`` frames went through, and counts
    the frames it was asked for after that (how long the job went on writing into nothing)."""

    def __init__(self, pipe, folder: Path, after: int):
        self.pipe, self.folder, self.after, self.seen, self.later = pipe, folder, after, 0, 0

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def stream(self, items, image_of=lambda x: x, **kwargs):
        def counted():
            for item in items:
                self.seen += 1
                if self.seen == self.after:
                    shutil.rmtree(self.folder)
                elif self.seen > self.after:
                    self.later += 1
                yield item
        return self.pipe.stream(counted(), image_of=image_of, **kwargs)


def test_output_folder_deleted_mid_video_stops_at_the_next_write(longer_clip, tmp_path):
    """Writes into a deleted folder still succeed (the file lives on, unreachable), so the job used
    to run to the end (150 frames) and only fail at the rename; now it stops within a few frames."""
    from backdrop import Pipeline
    from backdrop.errors import OutputError
    from backdrop.process import process_video

    out = tmp_path / "out"
    out.mkdir()
    pipe = _RemovesOutputAfter(Pipeline(background="#00ff00", quiet=True), out, after=10)
    try:
        with pytest.raises(OutputError, match="removed while writing o.mp4") as err:
            process_video(longer_clip, out / "o.mp4", pipeline=pipe, quiet=True, overlap=True)
    finally:
        pipe.pipe.close()
    assert "\n" not in str(err.value)
    assert pipe.later <= 24, f"went on for {pipe.later} frames after the folder was deleted"
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_output_folder_deleted_mid_image_folder_is_one_line(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, p in enumerate(sorted(shared_path("portraits-soft", "images").iterdir())[:24]):
        shutil.copy(p, src / f"{i:03d}{p.suffix}")
    out = tmp_path / "out"
    p = subprocess.Popen([sys.executable, "-m", "backdrop", "image", str(src), str(out), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 60 and not (out.is_dir() and len([q for q in out.iterdir() if q.suffix]) >= 2):
        time.sleep(0.02)
    assert p.poll() is None, "finished too early"
    shutil.rmtree(out)
    _, err = p.communicate(timeout=TIMEOUT)
    one_error_line(subprocess.CompletedProcess(p.args, p.returncode, "", err), "output folder", "removed")
    assert not out.exists() and sorted(q.name for q in tmp_path.iterdir()) == ["in"]


def test_camera_recording_gets_normal_permissions(clip, tmp_path):
    """mkstemp makes 0600: a recording was unreadable to anyone else; now 0666 less the umask,
    as every other output (atomic.open_temp)."""
    modes = {}
    for umask in (0o022, 0o027):
        out = tmp_path / f"rec-{umask:o}.mp4"
        proc = subprocess.run([sys.executable, "-m", "backdrop", "camera", "--device", str(clip), "--width", "160",
                               "--height", "120", "--output", str(out), "--frames", "5", "-q"],
                              capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=lambda m=umask: os.umask(m))
        assert proc.returncode == 0, proc.stderr
        modes[umask] = out.stat().st_mode & 0o777
    assert modes == {0o022: 0o644, 0o027: 0o640}, {k: oct(v) for k, v in modes.items()}
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]  # no temp file left


def test_camera_recording_into_a_deleted_folder_stops_with_one_error(clip, tmp_path):
    from backdrop.errors import OutputError
    from backdrop.io.sinks import FileSink

    out = tmp_path / "out"
    out.mkdir()
    frames = clip_frames(clip, 30, (160, 120))
    sink = FileSink(out / "rec.mp4", fps=30)
    for img in frames[:5]:
        sink.write(img)
    shutil.rmtree(out)
    written = 0
    with pytest.raises(OutputError, match="removed while writing rec.mp4"):
        for _ in range(10):
            for img in frames:
                sink.write(img)
                written += 1
    sink.abort()
    assert written <= 30 and list(tmp_path.iterdir()) == []


# -- 7. standard streams, non-regular inputs, size changes ----------------------------------------

@pytest.mark.parametrize("how", ["closed", "devnull"])
def test_closed_or_null_standard_streams(clip, tmp_path, how):
    photo = sorted(shared_path("portraits-soft", "images").iterdir())[0]
    py = f"{sys.executable} -m backdrop"
    redir = "<&- >&- 2>&-" if how == "closed" else "</dev/null >/dev/null 2>/dev/null"
    script = (f"{py} image '{photo}' '{tmp_path}/o.png' {redir}; echo $? > '{tmp_path}/rc1'; "
              f"{py} video '{clip}' '{tmp_path}/o.mp4' -b blur {redir}; echo $? > '{tmp_path}/rc2'; "
              f"{py} image '{tmp_path}/missing.png' '{tmp_path}/x.png' {redir}; echo $? > '{tmp_path}/rc3'")
    subprocess.run(["bash", "-c", script], timeout=TIMEOUT * 2, check=True)
    rcs = [(tmp_path / f"rc{i}").read_text().strip() for i in (1, 2, 3)]
    assert rcs == ["0", "0", "2"], rcs
    assert Image.open(tmp_path / "o.png").size == Image.open(photo).size
    assert count_frames(tmp_path / "o.mp4") == 30


def test_inputs_that_are_not_regular_files(tmp_path):
    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)
    one_error_line(run_cli("video", str(fifo), str(tmp_path / "o.mp4"), "-q", timeout=20),
                   "not a regular file", "x.mp4")
    one_error_line(run_cli("video", "/dev/zero", str(tmp_path / "o.mp4"), "-q", timeout=20), "not a regular file")
    fifo_png = tmp_path / "x.png"
    os.mkfifo(fifo_png)
    one_error_line(run_cli("image", str(fifo_png), str(tmp_path / "o.png"), "-q", timeout=20), "not a regular file")
    folder = tmp_path / "d.mp4"
    folder.mkdir()
    one_error_line(run_cli("video", str(folder), str(tmp_path / "o.mp4"), "-q", timeout=20), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.mp4", "x.mp4", "x.png"]


def test_picture_size_change_keeps_aspect(frames60, tmp_path):
    """Raw H.264 whose second half is portrait (120x160): frames come out at the first frame's
    160x120, letterboxed, not stretched."""
    import cv2

    wide = frames60[:12]
    tall = [np.ascontiguousarray(cv2.resize(f, (120, 160))) for f in frames60[12:24]]
    a = encode(tmp_path / "a.h264", wide, "libx264", "h264")
    b = encode(tmp_path / "b.h264", tall, "libx264", "h264")
    both = tmp_path / "both.h264"
    both.write_bytes(a.read_bytes() + b.read_bytes())

    from backdrop.io.video import VideoReader

    got = [f.image for f in VideoReader(both)]
    assert len(got) == 24
    assert {g.shape for g in got} == {(120, 160, 3)}
    late = got[18].astype(np.float32)
    # 120x160 fitted into 160x120: 90x120 in the middle, 35 black columns each side
    assert late[:, :30].max() < 8 and late[:, -30:].max() < 8
    expect = cv2.resize(tall[6], (90, 120), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(late[:, 35:125] - expect).mean() < 12

    proc = run_cli("video", str(both), str(tmp_path / "o.mp4"), "-b", "#00b140")
    assert proc.returncode == 0, proc.stderr
    assert "picture size of both.h264 changes part-way" in proc.stderr
    with av.open(str(tmp_path / "o.mp4")) as c:
        sizes = {(f.width, f.height) for f in c.decode(video=0)}
    assert sizes == {(160, 120)}
