"""``backdrop batch`` hardening without a Ray cluster: impossible resource requests, damaged
manifests, outputs verified by hash, truncated inputs in the report.

The manifest, the report and the worker functions are plain Python, so these run in seconds;
the end-to-end versions on Ray are in ``tests/test_batch.py``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import shared_path
from media import make_clip

from backdrop.cluster.driver import BatchOptions, BatchRun, _pending
from backdrop.cluster.jobs import run_whole
from backdrop.cluster.manifest import MANIFEST_NAME, Manifest
from backdrop.cluster.progress import Progress
from backdrop.cluster.report import BatchItem, BatchReport
from backdrop.hashing import sha256_file

# -- 1. impossible resource requests ------------------------------------------------------------


def test_cli_cpus_per_task_over_local_cpus_is_refused(tmp_path):
    """Was: Ray queued the task forever, no message. Now one line and exit 2, before Ray starts."""
    pytest.importorskip("ray")
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.png").write_bytes(shared_path("portraits-soft", "images", "WechatIMG253_2.png").read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "backdrop", "batch", str(photos), str(out), "--cpus-per-task", "4",
           "--num-cpus", "2"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("backdrop batch hung on --cpus-per-task 4 --num-cpus 2")
    assert p.returncode == 2 and "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("backdrop: error:")]
    assert len(lines) == 1 and "--cpus-per-task 4" in lines[0] and "2 CPUs" in lines[0], err
    assert not out.exists()  # refused before anything was created


class _FakeRay:
    def __init__(self, nodes, total=None):
        self._nodes, self._total = nodes, total

    def nodes(self):
        if self._nodes is None:
            raise RuntimeError("not supported")
        return self._nodes

    def cluster_resources(self):
        return {"CPU": self._total} if self._total is not None else {}


def test_cluster_too_small_for_cpus_per_task_is_refused():
    from backdrop.cluster.session import ClusterError, check_resources

    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}}, {"Alive": True, "Resources": {"CPU": 3.0}},
             {"Alive": False, "Resources": {"CPU": 64.0}}]  # a dead node runs nothing
    check_resources(_FakeRay(nodes), 3)
    with pytest.raises(ClusterError, match=r"--cpus-per-task 4 can never run: the largest node .* has 3 CPUs"):
        check_resources(_FakeRay(nodes), 4)  # 5 CPUs in all, but a task runs on one node
    with pytest.raises(ClusterError, match="has 0 CPUs"):  # a head started with --num-cpus=0 alone
        check_resources(_FakeRay([{"Alive": True, "Resources": {}}]), 1)
    check_resources(_FakeRay(None, total=8.0), 8)  # no node listing: the total decides
    with pytest.raises(ClusterError):
        check_resources(_FakeRay(None, total=8.0), 9)


# -- 2. damaged manifest lines ------------------------------------------------------------------

GOOD = {"output": "b.mp4", "status": "done", "input_sha256": "x", "settings": "s", "output_size": 3,
        "output_sha256": "y"}
DAMAGE = {
    "torn json": b'{"v": 1, "output": "a.mp4", "status": "do',
    "binary garbage": bytes(b for b in range(256) if b != 10) * 3,  # one line: no newline byte
    "nul bytes": b"\x00" * 512,
    "nul inside a record": b'{"output": "a.mp4", "status": "done\x00"}',
    "invalid utf-8": b'{"output": "a\xff\xfe.mp4", "status": "done"}',
    "not a record": b"[1, 2, 3]",
    "record without output": b'{"status": "done"}',
    "deep nesting": b"[" * 200_000,
}


@pytest.mark.parametrize("damage", list(DAMAGE.values()), ids=list(DAMAGE))
def test_damaged_manifest_line_is_skipped_with_one_warning(tmp_path, caplog, damage):
    path = tmp_path / MANIFEST_NAME
    good = json.dumps(GOOD).encode()
    path.write_bytes(good + b"\n" + damage + b"\n" + damage + b"\n" + good.replace(b"b.mp4", b"c.mp4") + b"\n")
    with caplog.at_level(logging.WARNING, logger="backdrop.cluster.manifest"):
        m = Manifest(tmp_path)
    assert sorted(m.last) == ["b.mp4", "c.mp4"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 damaged lines" in warnings[0].getMessage()


@pytest.mark.parametrize("damage", [DAMAGE["torn json"], DAMAGE["invalid utf-8"], b"\x00\x00"],
                         ids=["torn", "utf8", "nul"])
def test_append_after_a_torn_last_line_is_not_lost(tmp_path, damage):
    """Was: the next record was glued onto the torn line and lost with it on the next read."""
    path = tmp_path / MANIFEST_NAME
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + damage)  # no newline: torn mid-append
    Manifest(tmp_path).append({**GOOD, "output": "a.mp4"})
    m = Manifest(tmp_path)
    assert sorted(m.last) == ["a.mp4", "b.mp4"]


def test_item_behind_a_damaged_line_is_redone(tmp_path):
    """The damaged line was the only record of a.mp4: it is pending again, b.mp4 still skipped."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    items = []
    for name in ("a.png", "b.png"):
        (src / name).write_bytes(name.encode() * 10)
        (out / name).write_bytes(b"output of " + name.encode())
        items.append(BatchItem(src=src / name, rel=name, dst=out / name, media="image"))
    m = Manifest(out)
    for name in ("a.png", "b.png"):
        m.append({"output": name, "status": "done", "input_sha256": sha256_file(src / name), "settings": "s",
                  "output_size": (out / name).stat().st_size, "output_sha256": sha256_file(out / name)})
    lines = (out / MANIFEST_NAME).read_bytes().split(b"\n")
    lines[0] = lines[0][:17] + b"\xff\x00garbage"  # a.png's record damaged
    (out / MANIFEST_NAME).write_bytes(b"\n".join(lines))
    pending = _pending(items, Manifest(out), "s")
    assert [i.rel for i in pending] == ["a.png"] and items[1].status == "skipped"


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("name", [MANIFEST_NAME, ".backdrop-batch.lock"])
def test_a_linked_manifest_or_lock_is_refused_and_its_target_untouched(tmp_path, link, name):
    """Was: the manifest was appended in place, so a link of that name in the output folder had
    the batch write its records into a file outside it. Now one line, exit 2, before any work."""
    pytest.importorskip("ray")
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    out.mkdir()
    (photos / "p.png").write_bytes(shared_path("portraits-soft", "images", "WechatIMG253_2.png").read_bytes())
    victim = tmp_path / "notes.txt"
    victim.write_text("the user's own file\n")
    (out / name).symlink_to(victim) if link == "symlink" else os.link(victim, out / name)
    p = subprocess.run([sys.executable, "-m", "backdrop", "batch", str(photos), str(out), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("backdrop: error:"), p.stderr
    assert ("symbolic link" if link == "symlink" else "hard link") in lines[0], lines[0]
    assert victim.read_text() == "the user's own file\n"
    assert {q.name for q in out.iterdir()} <= {MANIFEST_NAME, ".backdrop-batch.lock"}  # no output made


def test_manifest_refuses_a_link_at_append_time(tmp_path):
    """A link put in place after the run started is refused at the next record, not written through."""
    from backdrop.errors import OutputError

    m = Manifest(tmp_path)
    victim = tmp_path.parent / f"{tmp_path.name}-victim.txt"
    victim.write_bytes(b"keep")
    (tmp_path / MANIFEST_NAME).symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link"):
        m.append({"output": "a.png", "status": "done"})
    assert victim.read_bytes() == b"keep"


# -- 3. outputs verified by hash, not by size alone ---------------------------------------------


def test_same_size_garbage_output_is_redone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dst = out / "a.png"
    dst.write_bytes(b"the real output bytes")
    m = Manifest(out)
    m.append({"output": "a.png", "status": "done", "input_sha256": "i", "settings": "s",
              "output_size": dst.stat().st_size, "output_sha256": sha256_file(dst)})
    m = Manifest(out)
    assert m.is_done("a.png", "i", "s", dst)
    dst.write_bytes(b"same size, wrong byte")  # same length (21 bytes), other content
    assert dst.stat().st_size == m.last["a.png"]["output_size"]
    assert not m.is_done("a.png", "i", "s", dst)
    dst.write_bytes(b"the real output bytes")
    assert m.is_done("a.png", "i", "s", dst)
    rec = dict(m.last["a.png"])
    rec.pop("output_sha256")
    m.append(rec)  # a record that cannot prove the content is not trusted
    assert not Manifest(out).is_done("a.png", "i", "s", dst)


def test_workers_record_the_output_hash(tmp_path):
    photo = shared_path("portraits-soft", "images", "WechatIMG253_2.png")
    dst = tmp_path / "out.png"
    job = {"src": str(photo), "dst": str(dst), "media": "image", "background": "#00b140", "options": {},
           "crf": 20, "preset": "veryfast", "keep_audio": True, "cpus": 1, "env": {}}
    r = run_whole(job)
    assert r["status"] == "done", r
    assert r["output_sha256"] == sha256_file(dst) and r["output_size"] == dst.stat().st_size


# -- 4. truncated inputs are named in the report ------------------------------------------------


def _run(out: Path) -> BatchRun:
    return BatchRun(out, Manifest(out), "s", Progress(1, quiet=True), BatchOptions(quiet=True))


@pytest.fixture
def cut_clip(tmp_path) -> Path:
    clip = make_clip(shared_path("clips", "talking-room-512x480.mp4"), tmp_path / "whole.mp4", 30, (256, 240),
                     faststart=True, audio=False)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # index first: the first frames decode
    return cut


def test_truncated_input_is_reported_as_such(tmp_path, cut_clip):
    out = tmp_path / "out"
    out.mkdir()
    item = BatchItem(src=cut_clip, rel="cut.mp4", dst=out / "cut.mp4", media="video",
                     input_sha256=sha256_file(cut_clip))
    job = {"src": str(cut_clip), "dst": str(item.dst), "media": "video", "background": "#00b140",
           "options": {}, "crf": 20, "preset": "veryfast", "keep_audio": True, "cpus": 1, "env": {}}
    result = run_whole(job)
    assert result["status"] == "done" and result["truncated"] is True and 0 < result["frames"] < 30, result
    run = _run(out)
    run.finish(item, result)
    assert item.status == "done" and item.label == "done (input truncated)"
    table = BatchReport(items=[item]).table()
    assert "done (input truncated)" in table and "1 done (1 from truncated inputs)" in table, table
    rec = Manifest(out).last["cut.mp4"]
    assert rec["truncated"] is True and rec["output_sha256"] == sha256_file(item.dst)
    # the rerun skips it, and still says what it was made from
    again = BatchItem(src=cut_clip, rel="cut.mp4", dst=item.dst, media="video")
    assert _pending([again], Manifest(out), "s") == []
    assert again.status == "skipped" and again.label == "skipped (input truncated)"


def test_chunked_input_shorter_than_its_header_is_truncated(tmp_path, monkeypatch):
    """Chunks render exactly the packets the scan found; fewer than declared is a cut file."""
    from fractions import Fraction

    from backdrop.cluster import driver
    from backdrop.cluster.chunking import VideoScan

    pts = list(range(0, 3000 * 60, 3000))  # 60 frames at 30 fps (90 kHz), keyframe every 10
    sc = VideoScan(Fraction(1, 90000), Fraction(30), pts, pts[::10], "")
    monkeypatch.setattr(driver, "scan", lambda path: sc)
    out = tmp_path / "out"
    out.mkdir()
    run = BatchRun(out, Manifest(out), "s", Progress(1, quiet=True), BatchOptions(chunk_seconds=0.5, quiet=True))
    for declared, cut in ((60, False), (61, False), (100, True)):
        monkeypatch.setattr(driver, "_header_info", lambda path, d=declared: (d, d / 30, d, 0.0))
        item = BatchItem(src=tmp_path / "v.mp4", rel="v.mp4", dst=out / "v.mp4", media="video")
        chunks, _ = run._plan(item)
        assert len(chunks) == 3 and item.truncated is cut, declared
        run.finish(item, {"status": "done", "frames": 60, "chunks": 3, "output_size": 1, "output_sha256": "h"})
        assert item.label == ("done (input truncated)" if cut else "done")


# -- 5. the output folder deleted part-way -------------------------------------------------------


def test_output_folder_deleted_mid_batch_stops_with_one_line(tmp_path):
    """Was: the workers wrote whole videos into the deleted folder, the batch went on for ~20 s and
    ended on "cannot write the batch manifest ...". Now the workers stop at their next write check
    and the driver says what happened, exit 2, and recreates nothing."""
    pytest.importorskip("ray")
    src = tmp_path / "in"
    src.mkdir()
    clip = make_clip(shared_path("clips", "talking-room-512x480.mp4"), tmp_path / "c.mp4", 150, (256, 240),
                     audio=False)
    for i in range(4):
        (src / f"v{i}.mp4").write_bytes(clip.read_bytes())
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "backdrop", "batch", str(src), str(out), "-b", "#00b140", "--quiet"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        import time
        import shutil

        t0 = time.time()
        while time.time() - t0 < 120 and not (out.is_dir() and any(".part" in q.name for q in out.iterdir())):
            time.sleep(0.02)
        assert p.poll() is None, "finished too early"
        shutil.rmtree(out)
        _, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail("backdrop batch did not stop after its output folder was deleted")
    lines = [ln for ln in err.splitlines() if ln.startswith("backdrop: error:")]
    assert p.returncode == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and "was removed while the batch ran" in lines[0], err
    assert not out.exists(), sorted(str(q) for q in out.rglob("*"))
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.mp4", "in"]
