"""Outputs that are not plain files, full disks and broken standard streams (issue 21, data loss).

An output path that exists and is not a regular file (a device node, a named pipe, a socket, a
link to one) is refused with one line and exit 2, and is still there, untouched, afterwards: the
finished temp file used to be renamed over it (as root that destroyed device nodes). Each writer
goes through backdrop.io.atomic, so the tests run the real commands on real shared media.
Outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import shared_path
from media import make_clip
from test_hardening_files import one_error_line, run_cli

TIMEOUT = 120


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(shared_path("clips", "talking-indoor-512.mp4"), tmp_path_factory.mktemp("clip") / "clip.mp4",
                     12, (160, 120))


@pytest.fixture(scope="module")
def photo() -> Path:
    return sorted(shared_path("portraits-soft", "images").iterdir())[0]


def make_device(path: Path) -> Path:
    """A character device node that behaves as /dev/null (needs root; skips otherwise)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


@contextlib.contextmanager
def unix_socket(folder: Path, name: str):
    s = socket.socket(socket.AF_UNIX)
    path = folder / name
    s.bind(str(path))
    try:
        yield path
    finally:
        s.close()


def kind_of(path: Path) -> str:
    mode = os.lstat(path).st_mode
    return ("chr" if stat.S_ISCHR(mode) else "fifo" if stat.S_ISFIFO(mode) else "sock" if stat.S_ISSOCK(mode)
            else "link" if stat.S_ISLNK(mode) else "reg" if stat.S_ISREG(mode) else "other")


def only(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names), sorted(p.name for p in folder.iterdir())


# -- device nodes, pipes, sockets, links to them, and '-' -----------------------------------------

def test_video_and_image_refuse_a_device_a_fifo_a_socket_and_a_link_to_one(clip, photo):
    folder = Path(tempfile.mkdtemp(prefix="bd-out-", dir="/tmp"))  # short: a socket path has a 108-byte limit
    try:
        dev = make_device(folder / "dev.mp4")
        os.mkfifo(folder / "fifo.png")
        (folder / "link.png").symlink_to(dev)
        with unix_socket(folder, "sock.png") as sock:
            one_error_line(run_cli("video", clip, dev, "-q", "-b", "#00b140"), "dev.mp4 is a device")
            one_error_line(run_cli("image", photo, folder / "fifo.png", "-q"), "fifo.png is a named pipe")
            one_error_line(run_cli("image", photo, sock, "-q"), "sock.png is a socket")
            one_error_line(run_cli("image", photo, folder / "link.png", "-q"), "link.png is a device")
            assert [kind_of(folder / n) for n in ("dev.mp4", "fifo.png", "sock.png", "link.png")] == \
                ["chr", "fifo", "sock", "link"]
        one_error_line(run_cli("image", photo, "-", "-q", cwd=folder), "standard output")
        only(folder, "dev.mp4", "fifo.png", "link.png", "sock.png")
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


def test_camera_eval_and_image_folder_refuse_pipes(clip, photo, tmp_path):
    os.mkfifo(tmp_path / "rec.mp4")
    one_error_line(run_cli("camera", "-d", clip, "--output", tmp_path / "rec.mp4", "--frames", "3", "-q"),
                   "rec.mp4 is a named pipe")
    report = tmp_path / "ev"
    report.mkdir()
    os.mkfifo(report / "report.json")
    soft = shared_path("portraits-soft")
    name = photo.name
    imgs, masks = tmp_path / "imgs", tmp_path / "masks"
    imgs.mkdir()
    masks.mkdir()
    (imgs / name).symlink_to(photo)
    (masks / name).symlink_to(soft / "masks" / name)
    one_error_line(run_cli("eval", imgs, masks, "--out", report, "-q"), "report.json is a named pipe")
    out = tmp_path / "outs"
    out.mkdir()
    os.mkfifo(out / name)
    one_error_line(run_cli("image", imgs, out, "-q"), f"{name} is a named pipe")
    assert kind_of(tmp_path / "rec.mp4") == kind_of(report / "report.json") == kind_of(out / name) == "fifo"
    only(report, "report.json")
    only(out, name)


def test_a_pipe_made_while_writing_is_not_replaced(tmp_path):
    from backdrop.errors import OutputError
    from backdrop.io.atomic import atomic_output

    dst = tmp_path / "late.png"
    with pytest.raises(OutputError, match="late.png is a named pipe"):
        with atomic_output(dst) as tmp:
            tmp.write_bytes(b"done")
            os.mkfifo(dst)  # another program makes a pipe of that name while we work
    assert kind_of(dst) == "fifo"
    only(tmp_path, "late.png")


def test_batch_skips_appledouble_files_and_never_replaces_a_pipe(photo, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(photo.read_bytes())
    (src / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata")  # macOS copies leave these
    (src / "b.png").write_bytes(photo.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "b.png")
    proc = run_cli("batch", src, out, "-q", "-b", "#00b140", "--num-cpus", "1", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "._a.png" not in proc.stdout, proc.stdout
    rows = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith(("done", "failed"))]
    assert sorted((r[0], r[4]) for r in rows) == [("done", "a.png"), ("failed", "b.png")], proc.stdout
    assert "b.png is a named pipe" in proc.stdout, proc.stdout
    assert kind_of(out / "b.png") == "fifo" and kind_of(out / "a.png") == "reg"


# -- standard streams -----------------------------------------------------------------------------

def test_finished_job_with_stderr_on_a_full_device_exits_0(photo, tmp_path):
    script = f"{sys.executable} -m backdrop image '{photo}' '{tmp_path}/o.png' -b '#00b140' 2>/dev/full"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc
    assert (tmp_path / "o.png").stat().st_size > 1000


def test_a_result_lost_on_a_full_stdout_is_one_line(photo, tmp_path):
    soft = shared_path("portraits-soft")
    script = (f"{sys.executable} -m backdrop eval '{soft / 'images' / photo.name}' '{soft / 'masks' / photo.name}' "
              f"--json -q >/dev/full")
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    one_error_line(proc, "cannot write to standard output", "No space left")


# -- SIGQUIT --------------------------------------------------------------------------------------

def test_sigquit_stops_like_sigterm_and_leaves_no_part_file(tmp_path):
    long_clip = make_clip(shared_path("clips", "talking-room-512x480.mp4"), tmp_path / "c.mp4", 150, (256, 240))
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "backdrop", "video", str(long_clip), str(out / "o.mp4"), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time

    t0 = time.time()
    while time.time() - t0 < 60 and not any(".part" in n.name for n in out.iterdir()):
        assert p.poll() is None, p.communicate()
        time.sleep(0.01)
    time.sleep(0.2)
    p.send_signal(signal.SIGQUIT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGQUIT, (p.returncode, err)
    assert "Traceback" not in err and "partial output removed" in err, err
    assert list(out.iterdir()) == []
