"""Hostile and broken video inputs through the real command line, each in a subprocess with a
timeout (so a hang fails the test instead of stalling CI).

Every case asserts one of two outcomes: a clear one-line error (exit 2, exactly one
``backdrop: error:`` line, no traceback) or correct handling (exit 0 and a valid output). In
both, no temp file (``.part``) may remain and the input's bytes and mtime must be unchanged.
Corruptions are seeded, so a failure reproduces. Outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from conftest import shared_path
from media import make_clip

TIMEOUT = 120


# -- helpers -------------------------------------------------------------------------------------

def run_cli(*args: str, env: dict | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "backdrop", *args], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


MANY = r"""
import contextlib, io, json, logging, sys, traceback
from backdrop.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    logging.root.handlers.clear()  # main() configures logging onto the redirected stderr
    with contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            traceback.print_exc(file=buf)
            rc = -1
    results.append({"rc": rc, "stderr": buf.getvalue()})
print(json.dumps(results))
"""


def run_cli_many(cases: list[list[str]], env: dict | None = None) -> list[subprocess.CompletedProcess]:
    """Run many CLI invocations in one subprocess (one interpreter start instead of one per
    case), still under a timeout; each case gets its own exit code and stderr."""
    proc = subprocess.run([sys.executable, "-c", MANY, json.dumps(cases)], capture_output=True, text=True,
                          timeout=TIMEOUT * 2, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return [subprocess.CompletedProcess(c, r["rc"], "", r["stderr"]) for c, r in zip(cases, out)]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("backdrop: error:")]


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def snapshot(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def frame_times(path: Path) -> list[float]:
    from backdrop.io.video import VideoReader

    return [round(f.time, 6) for f in VideoReader(path)]


def synth_video(dst: Path, w: int, h: int, n: int = 3, *, pts: list[int] | None = None,
                tb: Fraction = Fraction(1, 30)) -> Path:
    """Frames cut from a real photo, at any size (odd sizes use yuv444p, as the writer does)."""
    photo = np.asarray(Image.open(shared_path("portraits-soft", "images", "WechatIMG253_2.png")).convert("RGB"))
    img = np.asarray(Image.fromarray(photo).resize((w, h)))
    c = av.open(str(dst), "w")
    s = c.add_stream("libx264", rate=30)
    s.width, s.height = w, h
    s.pix_fmt = "yuv444p" if (w % 2 or h % 2) else "yuv420p"
    s.time_base = tb
    s.codec_context.time_base = tb
    for k in range(n):
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        f.pts = pts[k] if pts else k
        f.time_base = tb
        c.mux(s.encode(f))
    c.mux(s.encode(None))
    c.close()
    return dst


def png_bytes(w: int, h: int) -> bytes:
    """A valid all-black RGB PNG of any size, made in well under a second even at 16000x16000:
    after a full flush, deflate encodes the same block of zero rows to the same bytes, so the
    block is compressed once and repeated; the zlib checksum of n zero bytes is computed."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    row = b"\0" * (1 + 3 * w)
    per = max(1, min(h, (1 << 22) // len(row)))
    co = zlib.compressobj(6)
    first = co.compress(row * per) + co.flush(zlib.Z_FULL_FLUSH)
    piece = co.compress(row * per) + co.flush(zlib.Z_FULL_FLUSH)
    full, rest = divmod(h, per)
    body = [first] + [piece] * (full - 1)
    if rest:
        body.append(co.compress(row * rest) + co.flush(zlib.Z_FULL_FLUSH))
    adler = (((h * len(row)) % 65521) << 16) | 1
    idat = b"".join(body) + co.flush(zlib.Z_FINISH)[:-4] + struct.pack(">I", adler)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def png_movie(dst: Path, w: int, h: int, n: int = 2) -> Path:
    """A .mov whose frames are PNG pictures of w x h: a video decompression bomb when large."""
    data = png_bytes(w, h)
    c = av.open(str(dst), "w", format="mov")
    s = c.add_stream("png", rate=25)
    s.width, s.height = w, h
    s.pix_fmt = "rgb24"
    for k in range(n):
        p = av.Packet(data)
        p.stream = s
        p.pts = p.dts = k
        p.time_base = Fraction(1, 25)
        c.mux(p)
    c.close()
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile-video")
    room = shared_path("clips", "talking-room-512x480.mp4")
    out = {
        "moov_last": make_clip(room, d / "moov_last.mp4", 30, (256, 240)),
        "moov_first": make_clip(room, d / "moov_first.mp4", 30, (256, 240), faststart=True),
        "long": make_clip(room, d / "long.mp4", 60, (256, 240)),
    }
    return out


def run_video_case(inp: Path, tmp: Path, *extra: str, env: dict | None = None, out_name: str = "out.mp4"):
    out_dir = tmp / "out"
    out_dir.mkdir(exist_ok=True)
    before = snapshot(inp)
    proc = run_cli("video", str(inp), str(out_dir / out_name), "-b", "#00b140", "-q", *extra, env=env)
    assert snapshot(inp) == before, "the input was modified"
    return proc, out_dir


def assert_error_or_valid(proc, out_dir: Path, source_frames: int) -> str:
    """Either a clean one-line error and an empty folder, or a valid output with no more
    frames than the source (a truncated input gives what could be decoded, with a warning)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode == 2:
        assert_clean_error(proc)
        assert leftovers(out_dir) == []
        return "error: " + error_lines(proc.stderr)[0].removeprefix("backdrop: error: ")
    assert proc.returncode == 0, proc.stderr
    assert leftovers(out_dir) == ["out.mp4"]
    n = len(frame_times(out_dir / "out.mp4"))
    assert 0 < n <= source_frames
    return f"ok: {n} frames" + (" (warned)" if "truncated or damaged" in proc.stderr else "")


# -- corrupt and truncated files -----------------------------------------------------------------

def run_corrupt_cases(tmp_path: Path, blobs: list[bytes], stem: str) -> list[str]:
    cases, folders, inputs = [], [], []
    for k, blob in enumerate(blobs):
        case = tmp_path / f"case{k}"
        (case / "out").mkdir(parents=True)
        bad = case / f"{stem}{k}.mp4"
        bad.write_bytes(blob)
        inputs.append((bad, snapshot(bad)))
        folders.append(case / "out")
        cases.append(["video", str(bad), str(case / "out" / "out.mp4"), "-b", "#00b140", "-q"])
    outcomes = []
    for proc, out_dir, (bad, before) in zip(run_cli_many(cases), folders, inputs):
        assert snapshot(bad) == before, "the input was modified"
        outcomes.append(assert_error_or_valid(proc, out_dir, 30))
    return outcomes


@pytest.mark.parametrize("which", ["moov_last", "moov_first"])
def test_truncated_at_random_bytes(clips, tmp_path, which):
    data = clips[which].read_bytes()
    rng = random.Random(f"trunc-{which}")
    cuts = sorted(rng.randrange(1, len(data)) for _ in range(5))
    outcomes = run_corrupt_cases(tmp_path, [data[:c] for c in cuts], "cut")
    # a file cut before its index (moov at the end) cannot be read at all: a clear error
    if which == "moov_last":
        assert any(o.startswith("error") for o in outcomes), outcomes
    # with the index first, a cut file yields its decodable frames, and the user is told
    if which == "moov_first":
        assert any("warned" in o for o in outcomes), outcomes


@pytest.mark.parametrize("which", ["moov_last", "moov_first"])
def test_flipped_bytes(clips, tmp_path, which):
    data = clips[which].read_bytes()
    rng = random.Random(f"flip-{which}")
    blobs = []
    for _ in range(6):
        b = bytearray(data)
        for _ in range(rng.choice([3, 30, 300])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        blobs.append(bytes(b))
    run_corrupt_cases(tmp_path, blobs, "flip")


def test_damaged_audio_stream_does_not_crash(clips, tmp_path):
    """Seed 13 of the exploratory fuzz: a flipped byte leaves an audio stream with no codec;
    the pictures are fine, so the video is written and the broken audio dropped (this used
    to be an AttributeError traceback)."""
    data = bytearray(clips["moov_last"].read_bytes())
    # find the 'mp4a' sample entry and break its fourcc: the audio codec becomes unknown
    i = data.find(b"mp4a")
    assert i > 0
    data[i:i + 4] = b"zzzz"
    bad = tmp_path / "noaudiocodec.mp4"
    bad.write_bytes(bytes(data))
    proc, out_dir = run_video_case(bad, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert leftovers(out_dir) == ["out.mp4"]
    assert len(frame_times(out_dir / "out.mp4")) == 30


def test_zero_frame_video(clips, tmp_path):
    """A Matroska file with a declared H.264 video track that holds no frame (and audio)."""
    src = av.open(str(clips["long"]))
    a = src.streams.audio[0]
    z = tmp_path / "zero-frames.mkv"
    out = av.open(str(z), "w")
    v = out.add_stream("libx264", rate=30)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    oa = out.add_stream_from_template(a)
    for p in src.demux(a):
        if p.size:
            p.stream = oa
            out.mux(p)
    out.close()
    src.close()
    with av.open(str(z)) as c:
        assert len(c.streams.video) == 1
    proc, out_dir = run_video_case(z, tmp_path)
    assert_clean_error(proc, "no decodable frames")
    assert leftovers(out_dir) == []


def test_audio_only_file(clips, tmp_path):
    src = av.open(str(clips["long"]))
    a = src.streams.audio[0]
    dst = tmp_path / "audio-only.mp4"
    out = av.open(str(dst), "w")
    oa = out.add_stream_from_template(a)
    for p in src.demux(a):
        if p.size:
            p.stream = oa
            out.mux(p)
    out.close()
    src.close()
    proc, out_dir = run_video_case(dst, tmp_path)
    assert_clean_error(proc, "no video stream", "audio-only")


@pytest.mark.parametrize("content", [b"hello, this is not a video\n" * 20, b""], ids=["text", "empty"])
def test_not_a_video_named_mp4(tmp_path, content):
    bad = tmp_path / "fake.mp4"
    bad.write_bytes(content)
    proc, out_dir = run_video_case(bad, tmp_path)
    assert_clean_error(proc, "not a readable video", "fake.mp4")
    assert leftovers(out_dir) == []


# -- pixel limit (decompression bombs) -----------------------------------------------------------

# Peak memory of this process image: VmHWM is per address space, so unlike ru_maxrss it does
# not inherit the (large) pytest parent's size across fork + exec.
BOMB_PROBE = (
    "import sys\n"
    "from backdrop.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "print('maxrss_kb', hwm[0] if hwm else 'nan', file=sys.stderr)\n"
    "sys.exit(rc)\n"
)


def run_measured(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    proc = subprocess.run([sys.executable, "-c", BOMB_PROBE, *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, **(env or {})})
    kb = [float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("maxrss_kb")]
    return proc, (kb[0] / 1024 if kb else float("nan"))


def test_video_bomb_refused_before_allocating(tmp_path):
    """A 1 MB .mov of PNG frames declaring 16000x16000 (256 MP). FFmpeg decodes a first frame
    while opening the file, so without a cap it allocates ~800 MB before any check of ours
    (measured: 806 MB peak RSS); the reader now passes ``max_pixels`` to FFmpeg itself."""
    bomb = png_movie(tmp_path / "bomb.mov", 16000, 16000)
    assert bomb.stat().st_size < 2_000_000
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    before = snapshot(bomb)
    proc, peak_mb = run_measured("video", str(bomb), str(out_dir / "o.mp4"), "-q", "-b", "#000000")
    assert_clean_error(proc, "16000x16000", "BACKDROP_MAX_PIXELS")
    assert peak_mb < 400, f"peak RSS {peak_mb:.0f} MB: the frame was allocated"
    assert leftovers(out_dir) == []
    assert snapshot(bomb) == before


def test_pixel_limit_is_configurable(clips, tmp_path):
    clip = clips["moov_first"]  # 256x240 = 61440 pixels
    proc, out_dir = run_video_case(clip, tmp_path, env={"BACKDROP_MAX_PIXELS": "50000"})
    assert_clean_error(proc, "256x240", "50000")
    assert leftovers(out_dir) == []
    proc, out_dir = run_video_case(clip, tmp_path, env={"BACKDROP_MAX_PIXELS": "70000"})
    assert proc.returncode == 0, proc.stderr
    proc, out_dir = run_video_case(clip, tmp_path, env={"BACKDROP_MAX_PIXELS": "lots"}, out_name="x.mp4")
    assert_clean_error(proc, "BACKDROP_MAX_PIXELS must be a positive integer")


# -- sizes, timing, names: these must work ------------------------------------------------------

@pytest.mark.parametrize("w,h,n", [(1, 1, 3), (3, 5, 3), (4096, 2160, 1)])
def test_odd_and_large_sizes_work(tmp_path, w, h, n):
    clip = synth_video(tmp_path / f"v{w}x{h}.mp4", w, h, n)
    proc, out_dir = run_video_case(clip, tmp_path)
    assert proc.returncode == 0, proc.stderr
    from backdrop.io.video import VideoReader

    frames = list(VideoReader(out_dir / "out.mp4"))
    assert len(frames) == n and frames[0].image.shape == (h, w, 3)


def test_variable_frame_rate_timestamps_kept(tmp_path):
    pts = [0, 33, 66, 166, 186, 219, 400, 433, 466, 499, 700, 710]
    clip = synth_video(tmp_path / "vfr.mp4", 128, 96, len(pts), pts=pts, tb=Fraction(1, 1000))
    proc, out_dir = run_video_case(clip, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert frame_times(out_dir / "out.mp4") == [p / 1000 for p in pts]


def test_non_ascii_and_space_paths(clips, tmp_path):
    folder = tmp_path / "dossier avec espaces ü 日本"
    folder.mkdir()
    inp = folder / "vidéo clip ü.mp4"
    shutil.copy(clips["moov_first"], inp)
    out_dir = folder / "sortie é"
    out_dir.mkdir()
    before = snapshot(inp)
    proc = run_cli("video", str(inp), str(out_dir / "résultat 1.mp4"), "-q", "-b", "#00b140")
    assert proc.returncode == 0, proc.stderr
    assert snapshot(inp) == before
    assert leftovers(out_dir) == ["résultat 1.mp4"]
    assert len(frame_times(out_dir / "résultat 1.mp4")) == 30


# -- the output disk fills up -------------------------------------------------------------------



def fill(mnt: Path, leave: int) -> None:
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    (mnt / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_disk_full_mid_write_video(clips, tmp_path, small_disk):
    fill(small_disk, 200_000)
    inp = clips["long"]
    before = snapshot(inp)
    proc = run_cli("video", str(inp), str(small_disk / "out.mp4"), "-q", "--crf", "0", "-b", "#00b140")
    line = assert_clean_error(proc, "no space left on the device", "out.mp4")
    assert ".part" not in line  # the message names the user's file, not our temp file
    assert leftovers(small_disk) == ["filler"]
    assert snapshot(inp) == before


# -- signals mid-job ------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_signal_mid_job_leaves_nothing(tmp_path, sig, code, word):
    inp = shared_path("clips", "talking-room-512x480.mp4")  # 587 frames: seconds of work
    before = snapshot(inp)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "backdrop", "video", str(inp), str(out_dir / "o.mp4"), "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 60 and not any(".part" in n for n in leftovers(out_dir)):
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the frame loop
    assert p.poll() is None, "finished before the signal"
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code, err
    assert "Traceback" not in err and word in err
    assert leftovers(out_dir) == []
    assert snapshot(inp) == before
