"""Odd inputs (issue 21): complete variable-frame-rate MKV/WebM, symlink loops, negative
presenter placements, a bad recording suffix, and hostile PDF slides.

Real subprocesses on real shared frames, as tests/test_hardening_files.py; outcomes are listed
in docs/reliability.md.
"""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import shared_path
from media import clip_frames, make_clip
from test_hardening_files import one_error_line, run_cli

TIMEOUT = 120


# -- variable frame rate --------------------------------------------------------------------------

#: a screen recording's pattern: 30 frames at 30 fps, then a slide held, one frame each 0.5 s
VFR_TIMES = [i / 30 for i in range(30)] + [1 + i * 0.5 for i in range(10)]


def write_vfr(path: Path, fmt: str, codec: str, frames: list[np.ndarray], times: list[float]) -> Path:
    """A real variable-frame-rate file: each frame at its own pts (1 ms time base)."""
    tb = Fraction(1, 1000)
    with av.open(str(path), "w", format=fmt) as out:
        s = out.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        s.codec_context.time_base = tb
        if codec == "libx264":
            s.options = {"preset": "ultrafast", "g": "10"}
        for img, t in zip(frames, times):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts, vf.time_base = int(round(t * 1000)), tb
            out.mux(s.encode(vf))
        out.mux(s.encode(None))
    return path


@pytest.fixture(scope="module")
def frames40() -> list[np.ndarray]:
    return clip_frames(shared_path("clips", "talking-indoor-512.mp4"), 40, (160, 120))


@pytest.mark.parametrize("suffix,fmt,codec", [(".mkv", "matroska", "libx264"), (".webm", "webm", "libvpx-vp9")])
def test_complete_vfr_file_is_not_truncated_and_a_cut_one_is(frames40, tmp_path, suffix, fmt, codec):
    vfr = write_vfr(tmp_path / f"vfr{suffix}", fmt, codec, frames40, VFR_TIMES)
    with av.open(str(vfr)) as c:  # the average rate says ~166 frames for its 5.5 s; it holds 40
        assert sum(1 for _ in c.decode(video=0)) == 40 and c.streams.video[0].frames == 0
    out = tmp_path / "out"
    out.mkdir()
    ok = run_cli("video", vfr, out / "o.mp4", "-q", "-b", "#00b140", "--strict")
    assert ok.returncode == 0 and "truncated" not in ok.stderr, ok.stderr
    with av.open(str(out / "o.mp4")) as c:
        got = [round(float(f.pts * f.time_base), 2) for f in c.decode(video=0)]
    assert got == [round(t, 2) for t in VFR_TIMES]  # the timing kept, frame by frame
    # the same file cut in half (its header still says 5.5 s) is truncated, by its timestamps
    cut = tmp_path / f"cut{suffix}"
    data = vfr.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    from backdrop.io.video import VideoReader

    r = VideoReader(cut)
    n = sum(1 for _ in r)
    assert 3 < n < 40 and r.last_time < 4.0 and r.truncated, (n, r.last_time)


def test_batch_plan_judges_a_vfr_file_by_its_timestamps(frames40, tmp_path):
    """The batch driver's chunk plan (its own scan, no decode) uses the same rule."""
    from backdrop.cluster.driver import BatchOptions, BatchRun
    from backdrop.cluster.manifest import Manifest
    from backdrop.cluster.progress import Progress
    from backdrop.cluster.report import BatchItem

    vfr = write_vfr(tmp_path / "vfr.mkv", "matroska", "libx264", frames40, VFR_TIMES)
    out = tmp_path / "out"
    out.mkdir()
    run = BatchRun(out, Manifest(out), "s", Progress(1, quiet=True), BatchOptions(chunk_seconds=1.0, quiet=True))
    item = BatchItem(src=vfr, rel="vfr.mkv", dst=out / "vfr.mp4", media="video")
    chunks, _ = run._plan(item)
    assert len(chunks) >= 2 and item.truncated is False


def test_cut_short_rule():
    from backdrop.io.video_read import cut_short

    vfr = dict(declared_frames=0, frames=40, declared_end=5.533)
    assert not cut_short(**vfr, last_time=5.5, last_step=0.5)      # complete, slow at the end
    assert cut_short(**vfr, last_time=0.97, last_step=1 / 30)       # stopped after a second
    assert not cut_short(declared_frames=60, frames=59, declared_end=0, last_time=None, last_step=0)
    assert cut_short(declared_frames=60, frames=30, declared_end=0, last_time=None, last_step=0)


# -- paths and flags ------------------------------------------------------------------------------

def test_a_symlink_loop_is_named(tmp_path):
    (tmp_path / "a.mp4").symlink_to(tmp_path / "b.mp4")
    (tmp_path / "b.mp4").symlink_to(tmp_path / "a.mp4")
    one_error_line(run_cli("video", tmp_path / "a.mp4", tmp_path / "o.mp4", "-q"), "a.mp4 is a symlink loop")
    one_error_line(run_cli("image", tmp_path / "a.mp4", tmp_path / "o.png", "-q"), "is a symlink loop")
    one_error_line(run_cli("eval", tmp_path / "a.mp4", "-q"), "is a symlink loop")
    from backdrop.cluster.inputs import discover_inputs
    from backdrop.errors import InputError

    with pytest.raises(InputError, match="is a symlink loop"):
        discover_inputs(str(tmp_path / "a.mp4"), tmp_path / "out")
    (tmp_path / "gone.mp4").symlink_to(tmp_path / "nowhere.mp4")
    one_error_line(run_cli("video", tmp_path / "gone.mp4", tmp_path / "o.mp4", "-q"), "is a broken link")


def test_negative_presenter_values_are_values(tmp_path):
    clip = make_clip(shared_path("clips", "talking-indoor-512.mp4"), tmp_path / "c.mp4", 4, (160, 120))
    line = one_error_line(run_cli("video", clip, tmp_path / "o.mp4", "--presenter", "-1,-1,0", "-b", "slides.pdf"))
    assert "expected one argument" not in line and "presenter" in line, line


def test_camera_recording_with_a_bad_suffix_names_the_users_file(tmp_path):
    clip = make_clip(shared_path("clips", "talking-indoor-512.mp4"), tmp_path / "c.mp4", 4, (160, 120))
    line = one_error_line(run_cli("camera", "-d", clip, "--output", tmp_path / "rec.xyz", "--frames", "2", "-q"),
                          "rec.xyz")
    assert ".part" not in line and ".rec." not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


# -- PDF slides -----------------------------------------------------------------------------------

def minimal_pdf(media_box: str) -> bytes:
    """A hand-written one-page PDF (catalog, page tree, page) with the given MediaBox."""
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [%s] >>" % media_box.encode()]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def pdf_pages(path: Path, sizes: list[tuple[float, float]]) -> Path:
    pdfium = pytest.importorskip("pypdfium2")
    doc = pdfium.PdfDocument.new()
    for w, h in sizes:
        doc.new_page(w, h)
    doc.save(str(path))
    return path


def run_bounded(*args, limit_mb: int = 3000) -> tuple[subprocess.CompletedProcess, int]:
    """Run the CLI under an address-space limit (a bomb fails fast instead of swapping the
    machine); returns the process and its peak resident memory in MB."""
    code = ("import resource, subprocess, sys\n"
            f"lim = {limit_mb} * 2**20\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True,\n"
            "                   preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (lim, lim)))\n"
            "sys.stdout.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))\n"
            "sys.stderr.write(p.stderr)\nsys.exit(p.returncode)\n")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "backdrop", *map(str, args)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    return proc, int(proc.stdout or 0)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory) -> Path:
    return make_clip(shared_path("clips", "talking-indoor-512.mp4"), tmp_path_factory.mktemp("pc") / "c.mp4", 6,
                     (160, 120))


def test_hostile_pdfs_are_one_line(short_clip, tmp_path):
    zero = pdf_pages(tmp_path / "zero.pdf", [])
    line = one_error_line(run_cli("video", short_clip, tmp_path / "o.mp4", "-b", zero, "--presenter", "corner", "-q"),
                          "zero.pdf have no pages")
    assert "PDFium: Success" not in line
    huge = tmp_path / "huge.pdf"
    huge.write_bytes(minimal_pdf("0 0 99999999 99999999"))
    one_error_line(run_cli("video", short_clip, tmp_path / "o.mp4", "-b", huge, "--presenter", "corner", "-q"),
                   "page 1 of huge.pdf", "points")
    thin = pdf_pages(tmp_path / "thin.pdf", [(14400, 10)])
    one_error_line(run_cli("image", sorted(shared_path("portraits-soft", "images").iterdir())[0], tmp_path / "o.png",
                           "-b", thin, "--presenter", "corner", "-q"), "thin.pdf", "10:1")
    many = pdf_pages(tmp_path / "many.pdf", [(612, 792)] * 5000)
    proc, _ = run_bounded("video", short_clip, tmp_path / "o.mp4", "-b", many, "--presenter", "corner", "-q")
    one_error_line(proc, "many.pdf have 5000 pages")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.pdf", "many.pdf", "thin.pdf", "zero.pdf"]


def test_big_pages_and_long_decks_render_lazily_at_the_output_size(short_clip, tmp_path):
    """A 553-byte PDF with one 14400-point page reached 4.8 GB; 1500 letter pages were all
    rendered up front at 110 dpi (5 GB). Now only the shown pages are rendered, at output size."""
    big = pdf_pages(tmp_path / "big.pdf", [(14400, 14400)])
    assert big.stat().st_size < 1000
    proc, peak = run_bounded("video", short_clip, tmp_path / "big.mp4", "-b", big, "--presenter", "corner", "-q")
    assert proc.returncode == 0, proc.stderr
    assert peak < 600, peak
    from backdrop.io.video import VideoReader

    frame = next(iter(VideoReader(tmp_path / "big.mp4"))).image
    assert frame.shape[:2] == (120, 120)  # the square page's aspect at the clip's height
    assert frame[:20, :20].min() > 230  # the blank (white) page, not a letterbox bar
    deck = pdf_pages(tmp_path / "deck.pdf", [(612, 792)] * 1500)
    proc, peak = run_bounded("video", short_clip, tmp_path / "deck.mp4", "-b", deck, "--presenter", "corner", "-q")
    assert proc.returncode == 0, proc.stderr
    assert peak < 600, peak
