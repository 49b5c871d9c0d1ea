"""``backdrop batch`` on Ray: exact chunked output, invisible seams, resume, a killed worker,
SIGTERM mid-batch, and an existing cluster given by address.

Inputs are short re-encoded copies of real shared clips (60 and 30 frames, small sizes, a
keyframe every 10 frames so a 0.5 s chunk length splits them), a shared photo and a broken file.
Most tests share one embedded Ray session (the API reuses it); the CLI tests start their own.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import shared_path
from media import make_clip
from ray_head import ray_head, ray_transient

ray = pytest.importorskip("ray")

from backdrop.cluster import run_batch  # noqa: E402
from backdrop.cluster.manifest import MANIFEST_NAME, WORK_NAME  # noqa: E402
from backdrop.cluster.ray_batch import CRASH_ENV, ray_session  # noqa: E402
from backdrop.io.video import VideoReader  # noqa: E402

pytestmark = pytest.mark.cluster
ROOM = "room clip ü.mp4"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("batch-in")
    make_clip(shared_path("clips", "talking-room-512x480.mp4"), d / ROOM, 60, (256, 240))
    make_clip(shared_path("clips", "outdoor-seated-640x360.mp4"), d / "outdoor.mp4", 30, (320, 180), audio=False)
    shutil.copy(shared_path("portraits-soft", "images", "WechatIMG253_2.png"), d / "photo.png")
    (d / "broken.mp4").write_text("this is not a video\n")
    return d


@pytest.fixture(scope="module")
def ray_local():
    with ray_session(None, num_cpus=2) as r:
        yield r


def timestamps(path: Path) -> list[Fraction]:
    return [Fraction(f.pts) * f.time_base for f in VideoReader(path)]


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return []
        s = c.streams.audio[0]
        return [(p.pts, bytes(p)) for p in c.demux(s) if p.size]


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines() if line.strip()]


def assert_no_leftovers(out: Path) -> None:
    names = [p.name for p in out.rglob("*")]
    assert not [n for n in names if ".part" in n], names
    assert WORK_NAME not in names, names


def by_name(report) -> dict:
    return {i.rel: i for i in report.items}


def test_chunked_batch_is_exact(inputs, ray_local, tmp_path):
    out = tmp_path / "out"
    report = run_batch(str(inputs), out, background="#00b140", chunk_seconds=0.5, quiet=True)
    items = by_name(report)
    assert items[ROOM].status == "done" and items[ROOM].chunks == 3
    assert items["outdoor.mp4"].status == "done" and items["outdoor.mp4"].chunks == 2
    assert items["photo.png"].status == "done"
    assert items["broken.mp4"].status == "failed" and "not a readable video" in items["broken.mp4"].reason
    assert not report.ok
    table = report.table()
    assert "STATUS" in table and "failed" in table and "not a readable video" in table
    # no lost or duplicated frame, timestamps identical, audio packets identical
    for name in (ROOM, "outdoor.mp4"):
        assert timestamps(out / name) == timestamps(inputs / name), name
    src_audio = audio_packets(inputs / ROOM)
    assert src_audio and audio_packets(out / ROOM) == src_audio
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["outdoor.mp4", "photo.png", ROOM]
    assert_no_leftovers(out)
    for name in (ROOM, "outdoor.mp4", "photo.png", "broken.mp4"):
        assert (inputs / name).exists()


def test_chunk_seams_are_invisible(ray_local, tmp_path):
    """Lossless (crf 0) matte output, so only the pipeline can differ. A 150-frame clip in
    three chunks (frames 0-49, 50-99, 100-149): with the default 60-frame warm-up every frame,
    seams included, matches a single pass; without warm-up the frames right after each seam
    differ (the temporal state restarts)."""
    from backdrop.process import process_video

    clip = make_clip(shared_path("clips", "talking-room-512x480.mp4"), tmp_path / "long.mp4", 150, (256, 240))
    single = tmp_path / "single.mp4"
    process_video(clip, single, background="matte", crf=0, quiet=True, threads=1)  # as the workers
    ref = [f.image.astype(np.float32) for f in VideoReader(single)]

    def per_frame_diff(warmup: int | None) -> np.ndarray:
        out = tmp_path / f"w{warmup}"
        extra = {} if warmup is None else {"warmup": warmup}
        report = run_batch(str(clip), out, background="matte", crf=0, chunk_seconds=1.5, quiet=True, **extra)
        assert report.items[0].chunks == 3
        got = [f.image.astype(np.float32) for f in VideoReader(out / "long.mp4")]
        assert len(got) == len(ref)
        return np.array([np.abs(a - b).mean() for a, b in zip(got, ref)])

    warm = per_frame_diff(None)
    cold = per_frame_diff(0)
    seams = [100, 101, 102]  # the chunk at 50 replays from frame 0 within 60 frames: exact
    assert warm.max() < 0.15, warm.round(3)
    assert cold[seams].mean() > 2 * warm[seams].mean() + 0.05, (cold[seams], warm[seams])


def test_chunked_video_background_stays_in_step(inputs, ray_local, tmp_path):
    """A chunk starting at frame N shows background-video frame N, as a single pass does."""
    from backdrop.process import process_video

    bg = str(inputs / "outdoor.mp4")  # 30 frames: it loops twice under the 60-frame clip
    single = tmp_path / "single.mp4"
    process_video(inputs / ROOM, single, background=bg, crf=0, quiet=True, threads=1)
    out = tmp_path / "out"
    report = run_batch(str(inputs / ROOM), out, background=bg, crf=0, chunk_seconds=0.5, warmup=5, quiet=True)
    assert report.items[0].chunks == 3
    ref = [f.image.astype(np.float32) for f in VideoReader(single)]
    got = [f.image.astype(np.float32) for f in VideoReader(out / ROOM)]
    diff = np.array([np.abs(a - b).mean() for a, b in zip(got, ref)])
    assert len(got) == len(ref) and diff.max() < 1.5, diff.round(2)  # misaligned: about 3


def test_identical_inputs_chunked_side_by_side(inputs, ray_local, tmp_path):
    """Two names, same bytes, both chunked at once: each keeps its own chunk folder."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(inputs / ROOM, src / "one.mp4")
    shutil.copy(inputs / ROOM, src / "sub" / "one.mp4")
    out = tmp_path / "out"
    report = run_batch(str(src / "**" / "*.mp4"), out, background="#00b140", chunk_seconds=0.5, quiet=True)
    assert [(i.rel, i.status, i.chunks) for i in report.items] == [("one.mp4", "done", 3), ("sub/one.mp4", "done", 3)]
    for rel in ("one.mp4", "sub/one.mp4"):
        assert timestamps(out / rel) == timestamps(inputs / ROOM)
    assert_no_leftovers(out)


def test_resume_skips_finished_work(inputs, ray_local, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(inputs / "photo.png", src / "photo.png")
    make_clip(shared_path("clips", "outdoor-seated-640x360.mp4"), src / "outdoor.mp4", 20, (320, 180), audio=False)
    out = tmp_path / "out"

    def run(bg="#00b140"):
        return {k: v.status for k, v in by_name(run_batch(str(src), out, background=bg, quiet=True)).items()}

    assert run() == {"photo.png": "done", "outdoor.mp4": "done"}
    assert run() == {"photo.png": "skipped", "outdoor.mp4": "skipped"}
    # the input changed (new bytes): only it is redone
    make_clip(shared_path("clips", "outdoor-seated-640x360.mp4"), src / "outdoor.mp4", 12, (320, 180), audio=False)
    assert run() == {"photo.png": "skipped", "outdoor.mp4": "done"}
    assert len(timestamps(out / "outdoor.mp4")) == 12
    # an output removed by hand is made again
    (out / "photo.png").unlink()
    assert run() == {"photo.png": "done", "outdoor.mp4": "skipped"}
    # different settings: everything is redone
    assert run("#ff0000") == {"photo.png": "done", "outdoor.mp4": "done"}
    done = [r["output"] for r in records(out) if r["status"] == "done"]
    assert sorted(done) == sorted(["photo.png"] * 3 + ["outdoor.mp4"] * 3)
    assert_no_leftovers(out)


def test_rerun_checks_output_hash_and_survives_a_damaged_manifest(inputs, ray_local, tmp_path):
    """Same-size garbage in place of a finished output is redone (size alone was trusted); a
    manifest line of binary garbage is skipped with a warning and its item redone."""
    out = tmp_path / "out"
    src = inputs / "photo.png"

    def run() -> str:
        return run_batch(str(src), out, background="#00b140", quiet=True).items[0].status

    assert run() == "done"
    good = (out / "photo.png").read_bytes()
    (out / "photo.png").write_bytes(bytes(len(good)))  # same size, all zeros
    assert run() == "done" and (out / "photo.png").read_bytes() == good
    assert records(out)[-1]["output_sha256"] == hashlib.sha256(good).hexdigest()
    assert run() == "skipped"
    raw = (out / MANIFEST_NAME).read_bytes().splitlines(keepends=True)
    # every record damaged (invalid UTF-8, NULs), then a torn last line without a newline
    (out / MANIFEST_NAME).write_bytes(b"".join(b"\xff\xfe\x00" + line[3:] for line in raw) + b'{"output": "pho')
    assert run() == "done"  # no record left for it: redone, no traceback
    assert run() == "skipped"  # the new record was not glued onto the torn line


def test_cpus_per_task_over_the_session_is_refused(inputs, ray_local):
    """A task asking for more CPUs than the (caller's 2-CPU) session has: refused, not queued forever."""
    from backdrop.cluster import ClusterError

    got: list = []

    def call():
        try:
            run_batch(str(inputs / "photo.png"), Path(tempfile.mkdtemp()), cpus_per_task=3, num_cpus=4, quiet=True)
            got.append(None)
        except Exception as exc:  # noqa: BLE001
            got.append(exc)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the batch hung on an impossible --cpus-per-task"
    assert isinstance(got[0], ClusterError) and "can never run" in str(got[0]), got


def test_killed_worker_file_is_redone(inputs, ray_local, tmp_path, monkeypatch):
    """The test hook makes the first worker to reach frame 5 die with os._exit (no cleanup, a
    temp file left behind); Ray retries the task; the output is complete, recorded once, and
    the dead worker's temp file is gone."""
    for name, chunk_seconds in (("outdoor.mp4", 0.0), (ROOM, 0.5)):
        marker = tmp_path / f"crashed-{chunk_seconds}"
        monkeypatch.setenv(CRASH_ENV, str(marker))
        out = tmp_path / f"out-{chunk_seconds}"
        report = run_batch(str(inputs / name), out, background="#00b140", chunk_seconds=chunk_seconds, quiet=True)
        assert marker.exists(), "the worker did not crash"
        item = by_name(report)[name]
        assert item.status == "done", item.reason
        assert timestamps(out / name) == timestamps(inputs / name)
        assert [r["status"] for r in records(out)] == ["done"]
        assert_no_leftovers(out)
    assert by_name(report)[ROOM].chunks == 3


def test_cli_sigterm_mid_batch_then_resume(inputs, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    long = make_clip(shared_path("clips", "talking-room-512x480.mp4"), src / "a.mp4", 100, (256, 240))
    for n in ("b.mp4", "c.mp4", "d.mp4"):
        shutil.copy(long, src / n)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "backdrop", "batch", str(src / "*.mp4"), str(out), "-b", "#00b140",
           "--chunk-seconds", "0"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        if (out / MANIFEST_NAME).exists() and (out / MANIFEST_NAME).read_text().strip():
            break
        time.sleep(0.1)
    assert p.poll() is None, "the batch ended before it could be interrupted"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Traceback" not in err and "terminated" in err
    assert_no_leftovers(out)
    finished = {r["output"] for r in records(out) if r["status"] == "done"}
    assert 1 <= len(finished) < 4
    for name in finished:
        assert len(timestamps(out / name)) == 100
    # the rerun does only the rest, and prints the summary table
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = [line.split()[0] for line in proc.stdout.splitlines()[1:-1]]
    assert rows.count("skipped") == len(finished) and rows.count("done") == 4 - len(finished), proc.stdout
    assert "[4/4]" in proc.stderr  # progress across the whole batch
    for n in ("a.mp4", "b.mp4", "c.mp4", "d.mp4"):
        assert len(timestamps(out / n)) == 100
    assert_no_leftovers(out)


def test_existing_cluster_by_address(inputs, tmp_path):
    """A local head started with ``ray start --head`` on 127.0.0.1 (token auth on, loopback
    only), reached as a driver (HOST:PORT) and through Ray Client (ray://HOST:PORT)."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("the ray command is not installed")
    with ray_head() as head:
        src = tmp_path / "in"
        src.mkdir()
        shutil.copy(inputs / ROOM, src / ROOM)
        shutil.copy(inputs / "photo.png", src / "photo.png")
        for k, address in enumerate(head.addresses):
            out = tmp_path / f"out{k}"
            cmd = [sys.executable, "-m", "backdrop", "batch", str(src), str(out), "-b", "#00b140",
                   "--chunk-seconds", "0.5", "-q", "--address", address]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=head.env)
            if ray_transient(proc):
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=head.env)
            assert proc.returncode == 0, (address, proc.stderr[-2000:], head.raylet_errors())
            assert [line.split()[0] for line in proc.stdout.splitlines()[1:-1]] == ["done", "done"], proc.stdout
            assert timestamps(out / ROOM) == timestamps(src / ROOM)
            assert audio_packets(out / ROOM) == audio_packets(src / ROOM)
            assert_no_leftovers(out)
        # a task no node of the cluster can hold: refused with one line, not queued forever
        cmd = [sys.executable, "-m", "backdrop", "batch", str(src), str(tmp_path / "big"), "-b", "#00b140", "-q",
               "--address", head.addresses[0], "--cpus-per-task", "3"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=head.env)
        assert proc.returncode == 2 and "largest node" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_cli_errors_are_one_line(tmp_path, capsys):
    """User errors stop the batch before Ray starts: one line, exit 2 (run in-process: fast)."""
    from backdrop.cli import main

    def run(*args):
        rc = main(["batch", *args])
        return subprocess.CompletedProcess(args, rc, "", capsys.readouterr().err)
    empty = tmp_path / "empty"
    empty.mkdir()
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(shared_path("portraits-soft", "images", "WechatIMG253_2.png"), photos / "p.png")
    for args, fragment in (((str(empty), str(tmp_path / "o")), "no video or image files"),
                           ((str(tmp_path / "missing"), str(tmp_path / "o")), "input not found"),
                           ((str(photos), str(photos)), "output folder is the input folder"),
                           ((str(photos), str(photos / "p.png")), "must be a folder"),
                           ((str(photos), str(tmp_path / "o2"), "--background", "nope.jpg"), "background file not found"),
                           ((str(photos), str(tmp_path / "o3"), "--address", "ray://127.0.0.1:1"), "ray")):
        proc = run(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("backdrop: error:")]
        assert len(lines) == 1 and fragment in lines[0], proc.stderr
