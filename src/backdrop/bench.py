"""``backdrop bench``: how fast is the pipeline, and how close to the limit of just moving video?

For each run (a given clip, or a clip generated at 480p/720p/1080p/4K by scaling a real clip of
people), the benchmark measures, in one process and one sitting:

* **per-stage time** in ms/frame (min, median, p95, mean, and the per-frame share when a stage
  does not run on every frame): ``decode`` is timed here, on the :class:`VideoReader` iteration
  (demux + decode + conversion to RGB); every other stage is whatever the pipeline's
  :class:`~backdrop.timing.StageTimer` recorded during the end-to-end run (``inference``,
  ``postprocess``, ``composite``, ``encode``, and any stage the pipeline adds later);
* **end-to-end frames/s** of :func:`backdrop.process_video` (the code path of ``backdrop video``),
  file to file, audio copied;
* **bare transcode frames/s** of the same clip with the same reader and writer, the same CRF,
  preset, container and audio copy, but no pipeline: the practical limit. The ratio
  ``e2e / transcode`` is the number to watch, since it mostly cancels out the machine;
* **live latency**: a :class:`Pipeline` built with ``live=True``, the time from a frame entering
  it to its composite leaving it, p50/p95;
* **peak RSS** of a clean subprocess that runs the end-to-end job on the clip.

The result is a JSON-able dict (:func:`run_bench`) that ``backdrop bench --json`` prints and
``benchmarks/run_all.py`` turns into ``docs/benchmarks.md``. Absolute numbers only mean something
with the machine next to them, so :func:`machine_info` is part of every result.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .errors import InputError, OptionError
from .io.video import VideoReader, VideoWriter
from .pipeline import Pipeline, PipelineOptions
from .timing import StageTimer

# Named sizes (width, height). 480p is the 16:9 one.
SIZES: dict[str, tuple[int, int]] = {
    "360p": (640, 360),
    "480p": (854, 480),
    "540p": (960, 540),
    "720p": (1280, 720),
    "1080p": (1920, 1080),
    "1440p": (2560, 1440),
    "4k": (3840, 2160),
    "2160p": (3840, 2160),
}
DEFAULT_SIZES = ("480p", "720p", "1080p", "4k")
DEFAULT_FRAMES = 60
WARMUP_FRAMES = 3
# Stages in the order a frame meets them; anything else the pipeline records comes after.
STAGE_ORDER = ["decode", "downscale", "still", "preprocess", "inference", "postprocess", "roi", "cleanup",
               "temporal", "refine", "decontaminate", "composite", "encode"]
# Default source for generated frames: a real person at a desk, 16:9, so scaling is exact.
DEFAULT_SOURCE = ("clips", "office-desk-960x540.mp4")

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


# -- sizes and sources ------------------------------------------------------------------------

def parse_size(text: str) -> tuple[str, tuple[int, int]]:
    """``720p`` / ``4k`` / ``1280x720`` -> (label, (width, height))."""
    t = text.strip().lower()
    if t in SIZES:
        return ("4K" if t in ("4k", "2160p") else t), SIZES[t]
    m = re.fullmatch(r"(\d+)x(\d+)", t)
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise OptionError(f"--sizes: {text} is out of range (16..8192 pixels a side)")
        if w % 2 or h % 2:
            raise OptionError(f"--sizes: {text} must have even width and height (H.264 4:2:0)")
        return f"{w}x{h}", (w, h)
    raise OptionError(f"--sizes: unknown size {text!r}; use {', '.join(k for k in SIZES if k != '2160p')} or WxH")


def parse_sizes(text: str | None) -> list[tuple[str, tuple[int, int]]]:
    if text is None:
        return []
    parts = [p for p in text.split(",") if p.strip()]
    if not parts:
        raise OptionError("--sizes is empty; give e.g. 480p,720p,1080p,4k")
    return [parse_size(p) for p in parts]


def shared_data_dir() -> Path:
    """``BACKDROP_SHARED_DATA`` or ``../shared/data`` next to the checkout."""
    env = os.environ.get("BACKDROP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def default_source() -> Path | None:
    p = shared_data_dir().joinpath(*DEFAULT_SOURCE)
    return p if p.is_file() else None


# -- clips ------------------------------------------------------------------------------------

def _cover(img: np.ndarray, width: int, height: int) -> np.ndarray:
    from .compose.background import cover_resize

    if img.shape[1] == width and img.shape[0] == height:
        return img
    return cover_resize(img, width, height)


def make_clip(src: Path | None, dst: Path, size: tuple[int, int] | None = None, frames: int | None = None,
              *, crf: int = 18, preset: str = "veryfast", audio: bool = True) -> dict[str, Any]:
    """Write an H.264 clip: the first ``frames`` frames of ``src``, scaled to cover ``size``.

    ``src=None`` uses the bundled sample frames (the astronaut photo, panned). The source's audio
    is copied (packets, no re-encoding) up to the end of the last frame, interleaved by time, so
    the bench exercises the same audio copy as ``backdrop video``. Returns frames, size, audio.
    """
    dst = Path(dst)
    if src is None:
        from .sample import sample_frames

        w, h = size or (640, 480)
        n = frames or DEFAULT_FRAMES
        rate, tb = Fraction(30), Fraction(1, 30)
        items: Iterator[tuple[np.ndarray, int]] = ((f, i) for i, f in enumerate(sample_frames(n, w, h)))
        reader = None
    else:
        reader = VideoReader(Path(src))
        rate, tb = reader.rate, reader.time_base
        items = ((f.image, f.pts) for f in reader)
    audio_in = None
    written, w_h, first_pts, last_pts = 0, None, None, None
    step = max(1, round(1 / (float(rate) * float(tb))))
    try:
        with av.open(str(dst), mode="w", format="mp4") as out:
            vs = None
            pairs: dict[int, Any] = {}
            pending = None
            demux = iter(())
            if src is not None and audio and reader is not None and reader.has_audio:
                audio_in = av.open(str(src), mode="r", metadata_errors="ignore")
                for ist in audio_in.streams.audio:
                    if ist.codec_context.name in ("aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"):
                        pairs[ist.index] = out.add_stream_from_template(ist)
                if pairs:
                    demux = audio_in.demux(*[audio_in.streams[i] for i in pairs])

            def copy_audio(until: float) -> None:
                nonlocal pending
                while pairs:
                    pkt = pending or next(demux, None)
                    pending = None
                    if pkt is None:
                        return
                    if pkt.dts is None:
                        continue
                    when = float((pkt.pts if pkt.pts is not None else pkt.dts) * pkt.time_base)
                    if when > until:
                        pending = pkt
                        return
                    pkt.stream = pairs[pkt.stream.index]
                    out.mux(pkt)

            for img, pts in items:
                if frames is not None and written >= frames:
                    break
                if size is not None:
                    img = _cover(img, *size)
                if vs is None:
                    h, w = img.shape[:2]
                    w_h = (w, h)
                    vs = out.add_stream("libx264", rate=Fraction(rate).limit_denominator(100000))
                    vs.width, vs.height = w, h
                    vs.pix_fmt = "yuv444p" if (w % 2 or h % 2) else "yuv420p"
                    vs.codec_context.time_base = tb
                    vs.time_base = tb
                    vs.options = {"crf": str(crf), "preset": preset}
                    first_pts = pts
                if last_pts is not None and pts <= last_pts:
                    pts = last_pts + 1
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                vf.pts, vf.time_base = int(pts), tb
                out.mux(vs.encode(vf))
                last_pts = pts
                written += 1
                copy_audio(float((pts - first_pts) * tb))
            if vs is None:
                raise InputError(f"no frames to benchmark in {src}")
            out.mux(vs.encode(None))
            copy_audio(float((last_pts - first_pts + step) * tb))
    finally:
        if reader is not None:
            reader.close()
        if audio_in is not None:
            audio_in.close()
    return {"frames": written, "width": w_h[0], "height": w_h[1], "has_audio": bool(audio_in is not None and pairs)}


# -- measurements -----------------------------------------------------------------------------

def stats_ms(values: list[float] | np.ndarray, frames: int | None = None) -> dict[str, float]:
    """min/median/p95/mean over samples in ms, ``n``, and ``per_frame`` = total / frames."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        return {"min": 0.0, "median": 0.0, "p95": 0.0, "mean": 0.0, "n": 0, "per_frame": 0.0}
    frames = frames or int(a.size)
    return {"min": float(a.min()), "median": float(np.median(a)), "p95": float(np.percentile(a, 95)),
            "mean": float(a.mean()), "n": int(a.size), "per_frame": float(a.sum() / frames)}


def stage_summary(timer: StageTimer, frames: int) -> dict[str, dict[str, float]]:
    """The timer's summary (every stage it recorded), plus the per-frame share of each stage."""
    out = {}
    summary = timer.summary()
    for name, s in summary.items():
        values = timer.samples.get(name, [])
        total = float(np.sum(values)) if len(values) else s.get("mean", 0.0) * s.get("n", 0)
        out[name] = {**{k: float(v) for k, v in s.items() if k != "n"}, "n": int(s.get("n", len(values))),
                     "per_frame": total / frames if frames else 0.0}
    return out


def order_stages(stages: dict[str, Any]) -> dict[str, Any]:
    """Stages in the order a frame meets them; stages unknown here go just before ``encode``."""
    known = [s for s in STAGE_ORDER if s in stages and s != "encode"]
    rest = sorted(s for s in stages if s not in STAGE_ORDER)
    tail = ["encode"] if "encode" in stages else []
    return {s: stages[s] for s in known + rest + tail}


def time_decode(clip: Path) -> dict[str, Any]:
    """ms/frame of the VideoReader iteration alone (demux, decode, RGB conversion, rotation)."""
    samples: list[float] = []
    reader = VideoReader(clip)
    t = time.perf_counter()
    for _ in reader:
        now = time.perf_counter()
        samples.append((now - t) * 1000.0)
        t = time.perf_counter()
    return stats_ms(samples)


def _as_kind(img: np.ndarray, kind: str) -> np.ndarray:
    if kind == "rgba":
        return np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    if kind == "gray":
        return np.ascontiguousarray(img[..., 1])
    return img


def output_suffix(kind: str) -> str:
    return ".mov" if kind == "rgba" else ".mp4"


def bare_transcode(clip: Path, dst: Path, *, crf: int = 20, preset: str = "veryfast", kind: str = "rgb",
                   keep_audio: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Decode and re-encode ``clip`` with the reader and writer ``backdrop video`` uses, no pipeline.

    Same CRF/preset/container, same timestamps, audio copied the same way; ``kind`` matches the
    pipeline's output (an opaque alpha or a grey plane is added so the encoder is the same).
    ``limit`` stops after that many frames (for warming up, not for measuring).
    """
    from .io.atomic import atomic_output

    reader = VideoReader(clip)
    t0 = time.perf_counter()
    frames = 0
    with atomic_output(dst) as tmp:
        writer = None
        try:
            for item in reader:
                if limit is not None and frames >= limit:
                    break
                if writer is None:
                    h, w = item.image.shape[:2]
                    writer = VideoWriter(tmp, width=w, height=h, rate=reader.rate, time_base=reader.time_base,
                                         kind=kind, crf=crf, preset=preset, suffix=Path(dst).suffix,
                                         audio_from=clip if keep_audio and reader.has_audio else None)
                writer.write(_as_kind(item.image, kind), item.pts)
                frames += 1
            if writer is None:
                raise InputError(f"video has no decodable frames: {Path(clip).name}")
            writer.close()
        except BaseException:
            if writer is not None:
                writer.discard()
            raise
        finally:
            reader.close()
    seconds = time.perf_counter() - t0
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds if seconds else 0.0}


def _warm(pipe: Pipeline, clip: Path, n: int = WARMUP_FRAMES) -> None:
    """Run a few frames so one-off costs (allocations, delegate set-up) are not in the numbers."""
    reader = VideoReader(clip)
    try:
        for i, f in enumerate(reader):
            if i >= n:
                break
            pipe(f.image)
    finally:
        reader.close()
    pipe.reset()
    pipe.timer.reset()


def end_to_end(clip: Path, dst: Path, pipe: Pipeline, *, crf: int = 20, preset: str = "veryfast",
               keep_audio: bool = True) -> dict[str, Any]:
    """``process_video`` on ``clip`` with ``pipe`` (the ``backdrop video`` path), timer reset first."""
    from .process import process_video

    pipe.reset()
    pipe.timer.reset()
    stats = process_video(clip, dst, pipeline=pipe, crf=crf, preset=preset, quiet=True, keep_audio=keep_audio)
    return {"frames": int(stats["frames"]), "seconds": float(stats["seconds"]), "fps": float(stats["fps"]),
            "inferences": int(stats.get("inferences", 0)),
            "skipped_fraction": float(stats.get("skipped_fraction", 0.0))}


def live_latency(clip: Path, pipe: Pipeline, limit: int | None = None) -> dict[str, Any]:
    """Time from a frame entering a live pipeline (``pipe(frame)``) to its composite leaving it."""
    pipe.reset()
    pipe.timer.reset()
    reader = VideoReader(clip)
    samples: list[float] = []
    try:
        for i, f in enumerate(reader):
            if limit is not None and i >= limit:
                break
            img = f.image
            t0 = time.perf_counter()
            out = pipe(img)
            samples.append((time.perf_counter() - t0) * 1000.0)
            if out is None:  # pragma: no cover - a live pipeline must answer every frame
                raise RuntimeError("live pipeline returned no composite")
    finally:
        reader.close()
    s = stats_ms(samples)
    return {"p50_ms": s["median"], "p95_ms": s["p95"], "min_ms": s["min"], "mean_ms": s["mean"],
            "frames": s["n"], "max_fps": 1000.0 / s["median"] if s["median"] else 0.0}


def peak_memory(clip: Path, options: PipelineOptions, background: Any, *, crf: int = 20,
                preset: str = "veryfast", keep_audio: bool = True, timeout: float = 1800) -> dict[str, Any]:
    """Peak RSS of a fresh subprocess that runs the end-to-end job on ``clip``.

    ``baseline_mb`` is the resident size after imports and model load, before the first frame;
    ``peak_mb`` the high-water mark at the end. Their difference is what processing the video costs.
    """
    payload = base64.b64encode(pickle.dumps({"clip": str(clip), "options": options, "background": background,
                                             "crf": crf, "preset": preset, "keep_audio": keep_audio})).decode()
    env = dict(os.environ)
    pkg_parent = str(Path(__file__).resolve().parents[1])  # this very copy of backdrop, installed or not
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "backdrop.bench", "--memory-child"], input=payload,
                          capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"memory subprocess failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _rss_mb() -> tuple[float | None, float | None]:
    """(current RSS, peak RSS) of this process in MB; peak is the kernel's high-water mark."""
    try:
        status = Path("/proc/self/status").read_text()
        cur = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
        hwm = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if cur and hwm:
            return int(cur.group(1)) / 1024.0, int(hwm.group(1)) / 1024.0
    except OSError:
        pass
    current = None
    try:
        import psutil

        mi = psutil.Process().memory_info()
        current = mi.rss / 2**20
        if hasattr(mi, "peak_wset"):  # Windows
            return current, mi.peak_wset / 2**20
    except ImportError:
        pass
    try:
        import resource
    except ImportError:
        return current, None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return current, (kb / 2**20 if sys.platform == "darwin" else kb / 1024.0)


def _memory_child() -> int:
    job = pickle.loads(base64.b64decode(sys.stdin.read()))
    from .process import process_video

    pipe = Pipeline(background=job["background"], options=job["options"])
    baseline, _ = _rss_mb()
    clip = Path(job["clip"])
    with tempfile.TemporaryDirectory(prefix="backdrop-bench-mem-") as tmp:
        dst = Path(tmp) / ("out" + output_suffix(pipe.output_kind))
        stats = process_video(clip, dst, pipeline=pipe, crf=job["crf"], preset=job["preset"], quiet=True,
                              keep_audio=job.get("keep_audio", True))
    pipe.close()
    _, peak = _rss_mb()
    print(json.dumps({"baseline_mb": baseline, "peak_mb": peak,
                      "processing_mb": (peak - baseline) if peak is not None and baseline is not None else None,
                      "frames": int(stats["frames"])}))
    return 0


# -- the machine ------------------------------------------------------------------------------

def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """What the numbers were taken on: CPU, cores, RAM, load, and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    if ram_gb is None:
        try:
            import psutil

            ram_gb = round(psutil.virtual_memory().total / 2**30, 1)
        except ImportError:
            pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    from . import __version__

    return {
        "cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": usable, "ram_gb": ram_gb,
        "load_avg": load, "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "backdrop": __version__,
        "numpy": np.__version__, "opencv": _version("opencv-python-headless") or _version("opencv-python"),
        "onnxruntime": _version("onnxruntime"), "ai-edge-litert": _version("ai-edge-litert"),
        "av": av.__version__, "ffmpeg_libavcodec": ".".join(map(str, av.library_versions.get("libavcodec", ()))),
    }


def describe_machine(m: dict[str, Any]) -> str:
    load = "" if not m.get("load_avg") else f", load {m['load_avg'][0]:.1f}"
    return (f"{m['cpu']}, {m['usable_cpus']} of {m['logical_cpus']} CPUs usable, {m['ram_gb']} GB RAM{load}; "
            f"Python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}, "
            f"ai-edge-litert {m['ai-edge-litert']}, av {m['av']}, opencv {m['opencv']}")


# -- the benchmark ----------------------------------------------------------------------------

@dataclass
class BenchConfig:
    """What to benchmark. ``clip=None`` scales the default real clip (or the sample) to ``sizes``."""

    clip: Path | None = None
    sizes: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    frames: int | None = None
    options: PipelineOptions = field(default_factory=PipelineOptions)
    background: Any = "blur"
    crf: int = 20
    preset: str = "veryfast"
    repeat: int = 1
    e2e: bool = True
    live: bool = True
    memory: bool = True
    keep_audio: bool = True

    def validate(self) -> "BenchConfig":
        if self.frames is not None and not 1 <= self.frames <= 100000:
            raise OptionError(f"--frames must be between 1 and 100000, got {self.frames}")
        if not 1 <= self.repeat <= 20:
            raise OptionError(f"--repeat must be between 1 and 20, got {self.repeat}")
        if not 0 <= self.crf <= 51:
            raise OptionError(f"--crf must be between 0 and 51, got {self.crf}")
        if self.clip is not None:
            clip = Path(self.clip)
            if not clip.exists():
                raise InputError(f"input not found: {clip}")
            if clip.is_dir():
                raise InputError(f"input is a folder, not a video: {clip}")
        return self


def _pipeline(cfg: BenchConfig, *, live: bool = False, segmenter=None) -> Pipeline:
    return Pipeline(background=cfg.background, options=cfg.options, live=live, segmenter=segmenter)


def bench_clip(clip: Path, cfg: BenchConfig, *, name: str, source: str, say: Say = _quiet,
               workdir: Path) -> dict[str, Any]:
    """Every measurement on one clip file; see the module docstring."""
    info = {"name": name, "source": source}
    reader = VideoReader(clip)
    has_audio = reader.has_audio
    reader.close()
    say(f"{name}: decode")
    decode = time_decode(clip)
    run: dict[str, Any] = {**info, "has_audio": has_audio, "frames": decode["n"]}
    pipe = _pipeline(cfg)
    try:
        kind = pipe.output_kind
        suffix = output_suffix(kind)
        w, h = None, None
        stages: dict[str, Any] = {"decode": decode}
        if cfg.e2e:
            _warm(pipe, clip)
            # the first encoder of a kind in a process pays for its set-up: not in either number
            bare_transcode(clip, workdir / f"warm{suffix}", crf=cfg.crf, preset=cfg.preset, kind=kind,
                           keep_audio=cfg.keep_audio, limit=WARMUP_FRAMES)
            best_e2e, best_bare, best_stages = None, None, None
            for r in range(cfg.repeat):
                say(f"{name}: bare transcode" + (f" ({r + 1}/{cfg.repeat})" if cfg.repeat > 1 else ""))
                bare = bare_transcode(clip, workdir / f"bare{suffix}", crf=cfg.crf, preset=cfg.preset, kind=kind,
                                      keep_audio=cfg.keep_audio)
                say(f"{name}: end-to-end" + (f" ({r + 1}/{cfg.repeat})" if cfg.repeat > 1 else ""))
                e2e = end_to_end(clip, workdir / f"e2e{suffix}", pipe, crf=cfg.crf, preset=cfg.preset,
                                 keep_audio=cfg.keep_audio)
                if best_bare is None or bare["fps"] > best_bare["fps"]:
                    best_bare = bare
                if best_e2e is None or e2e["fps"] > best_e2e["fps"]:
                    best_e2e = e2e
                    best_stages = stage_summary(pipe.timer, e2e["frames"])
            stages.update(best_stages or {})
            run["e2e"] = {**best_e2e, "ms_per_frame": 1000.0 / best_e2e["fps"] if best_e2e["fps"] else None}
            run["transcode"] = {**best_bare, "ms_per_frame": 1000.0 / best_bare["fps"] if best_bare["fps"] else None}
            run["ratio"] = best_e2e["fps"] / best_bare["fps"] if best_bare["fps"] else None
            run["skipped_fraction"] = best_e2e["skipped_fraction"]
            probe_reader = VideoReader(workdir / f"e2e{suffix}")
            for f in probe_reader:
                h, w = f.image.shape[:2]
                break
            probe_reader.close()
        else:
            # no file output: stages from the pipeline alone, in file mode
            _warm(pipe, clip)
            reader = VideoReader(clip)
            n = 0
            for _item, _matte, out in pipe.stream(reader, image_of=lambda f: f.image):
                h, w = out.shape[:2]
                n += 1
            stages.update(stage_summary(pipe.timer, n))
        run["width"], run["height"] = w, h
        run["stages"] = order_stages(stages)
        if cfg.live:
            say(f"{name}: live latency")
            live_pipe = _pipeline(cfg, live=True)
            try:
                _warm(live_pipe, clip)
                run["live"] = live_latency(clip, live_pipe)
            finally:
                live_pipe.close()
    finally:
        pipe.close()
    if cfg.memory:
        say(f"{name}: peak memory (subprocess)")
        run["memory"] = peak_memory(clip, cfg.options, cfg.background, crf=cfg.crf, preset=cfg.preset,
                                    keep_audio=cfg.keep_audio)
    if w is None:
        r2 = VideoReader(clip)
        for f in r2:
            h, w = f.image.shape[:2]
            break
        r2.close()
        run["width"], run["height"] = w, h
    return run


def run_bench(cfg: BenchConfig, say: Say = _quiet) -> dict[str, Any]:
    """Run the benchmark described by ``cfg`` and return the JSON-able result."""
    cfg.validate()
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="backdrop-bench-") as tmp:
        tmpdir = Path(tmp)
        jobs: list[tuple[str, str, Path]] = []
        if cfg.clip is not None and not cfg.sizes:
            clip = Path(cfg.clip)
            name = clip.name
            source = f"{clip.name} as given"
            if cfg.frames is not None:
                r = VideoReader(clip)
                total = r.frame_count
                r.close()
                if not total or total > cfg.frames:
                    say(f"{clip.name}: taking the first {cfg.frames} frames (re-encoded, H.264 CRF 18)")
                    cut = tmpdir / f"src-{clip.stem}.mp4"
                    made = make_clip(clip, cut, None, cfg.frames, audio=cfg.keep_audio)
                    source = f"{clip.name}, first {made['frames']} frames (re-encoded H.264 CRF 18)"
                    clip = cut
            jobs.append((name, source, clip))
        else:
            src = Path(cfg.clip) if cfg.clip is not None else default_source()
            sizes = cfg.sizes or [parse_size(s) for s in DEFAULT_SIZES]
            frames = cfg.frames or DEFAULT_FRAMES
            for label, (w, h) in sizes:
                say(f"{label}: writing a {w}x{h} H.264 clip of {frames} frames")
                dst = tmpdir / f"src-{label}.mp4"
                made = make_clip(src, dst, (w, h), frames, audio=cfg.keep_audio)
                what = src.name if src is not None else "the bundled sample (astronaut)"
                source = f"{what}, first {made['frames']} frames, scaled to cover {w}x{h} (H.264 CRF 18)"
                jobs.append((label, source, dst))
        for name, source, clip in jobs:
            work = tmpdir / f"work-{len(runs)}"
            work.mkdir()
            runs.append(bench_clip(clip, cfg, name=name, source=source, say=say, workdir=work))
    return {
        "machine": machine_info(),
        "config": {"model": cfg.options.model, "options": _jsonable(asdict(cfg.options)),
                   "background": cfg.background if isinstance(cfg.background, str) else "array",
                   "crf": cfg.crf, "preset": cfg.preset, "repeat": cfg.repeat, "keep_audio": cfg.keep_audio,
                   "clip": str(cfg.clip) if cfg.clip is not None else None, "frames": cfg.frames},
        "runs": runs,
        "seconds": time.perf_counter() - t0,
    }


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


# -- text output ------------------------------------------------------------------------------

def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def format_text(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [f"backdrop bench: model {cfg['model']}, background {cfg['background']}, "
             f"crf {cfg['crf']} preset {cfg['preset']}",
             f"machine: {describe_machine(result['machine'])}"]
    for run in result["runs"]:
        audio = "with audio" if run.get("has_audio") else "no audio"
        lines += ["", f"== {run['name']}: {run['width']}x{run['height']}, {run['frames']} frames, {audio}",
                  f"   {run['source']}",
                  f"   {'stage':<12}{'min':>9}{'median':>9}{'p95':>9}{'per frame':>11}   ms"]
        for stage, s in run["stages"].items():
            note = "" if s["n"] == run["frames"] or stage == "decode" else f"  ({s['n']} calls)"
            lines.append(f"   {stage:<12}{s['min']:>9.2f}{s['median']:>9.2f}{s['p95']:>9.2f}{s['per_frame']:>11.2f}{note}")
        if "e2e" in run:
            lines.append(f"   end-to-end {run['e2e']['fps']:.1f} frames/s, bare transcode {run['transcode']['fps']:.1f} "
                         f"frames/s, ratio {_fmt(run['ratio'], 2)}"
                         + (f", {100 * run['skipped_fraction']:.0f}% inferences skipped" if run.get("skipped_fraction") else ""))
        if "live" in run:
            lv = run["live"]
            lines.append(f"   live latency p50 {lv['p50_ms']:.1f} ms, p95 {lv['p95_ms']:.1f} ms "
                         f"({lv['max_fps']:.0f} frames/s at p50)")
        if "memory" in run:
            m = run["memory"]
            lines.append(f"   peak RSS {_fmt(m.get('peak_mb'), 0)} MB (after model load {_fmt(m.get('baseline_mb'), 0)} MB)")
    lines.append("")
    lines.append("Ratios travel between machines; absolute numbers belong to the machine above.")
    return "\n".join(lines)


# -- markdown (benchmarks/ and docs/benchmarks.md) -------------------------------------------

def update_markdown_section(path: Path, name: str, body: str, *, title: str = "# Benchmarks") -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in ``path``.

    Anything outside the markers (other sections, hand-written notes) is kept; a missing file or
    section is created (the section is appended).
    """
    path = Path(path)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pat.search(text):
        text = pat.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


if __name__ == "__main__":  # pragma: no cover - the memory subprocess
    if sys.argv[1:] == ["--memory-child"]:
        sys.exit(_memory_child())
    from .cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
