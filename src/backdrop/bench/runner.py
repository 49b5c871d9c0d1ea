"""What to benchmark and the order of it: :class:`BenchConfig`, :func:`bench_clip`, :func:`run_bench`.

The orchestration of ``backdrop bench``: validate the configuration, make the clips
(:mod:`.clips`), run every measurement on each (:mod:`.measure`, :mod:`.memory`), keep the best of
``repeat`` runs, and assemble the JSON-able result with the machine (:mod:`.machine`) next to it.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, OptionError
from ..io.paths import missing_input
from ..io.video import VideoReader
from ..engine import Pipeline, PipelineOptions
from .clips import DEFAULT_FRAMES, DEFAULT_SIZES, default_source, make_clip, parse_size
from .machine import machine_info
from .measure import WARMUP_FRAMES, bare_transcode, end_to_end, live_latency, output_suffix, time_decode, warm_up
from .memory import peak_memory
from .summary import order_stages, stage_summary

Say = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


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
            raise OptionError(f"{{option}} must be between 1 and 100000, got {self.frames}", option="frames")
        if not 1 <= self.repeat <= 20:
            raise OptionError(f"{{option}} must be between 1 and 20, got {self.repeat}", option="repeat")
        if not 0 <= self.crf <= 51:
            raise OptionError(f"{{option}} must be between 0 and 51, got {self.crf}", option="crf")
        if self.clip is not None:
            clip = Path(self.clip)
            if not clip.exists():
                raise missing_input(clip)
            if clip.is_dir():
                raise InputError(f"input is a folder, not a video: {clip}")
        return self


def _pipeline(cfg: BenchConfig, *, live: bool = False, segmenter=None) -> Pipeline:
    return Pipeline(background=cfg.background, options=cfg.options, live=live, segmenter=segmenter)


def _first_frame_size(path: Path) -> tuple[int | None, int | None]:
    """(width, height) of the first decoded frame of ``path`` (as the pipeline sees it), or Nones."""
    reader = VideoReader(path)
    try:
        for f in reader:
            h, w = f.image.shape[:2]
            return w, h
        return None, None
    finally:
        reader.close()


def bench_clip(clip: Path, cfg: BenchConfig, *, name: str, source: str, say: Say = _quiet,
               workdir: Path) -> dict[str, Any]:
    """Every measurement on one clip file; see :mod:`backdrop.bench`."""
    info = {"name": name, "source": source}
    reader = VideoReader(clip)
    has_audio = reader.has_audio
    reader.close()
    pipe = _pipeline(cfg)
    try:
        pixel_format = pipe.pixel_format
        say(f"{name}: decode")
        decode = time_decode(clip, planar=pixel_format == "rgb")  # the frames as the job reads them
        run: dict[str, Any] = {**info, "has_audio": has_audio, "frames": decode["n"]}
        suffix = output_suffix(pixel_format)
        w, h = None, None
        stages: dict[str, Any] = {"decode": decode}
        if cfg.e2e:
            warm_up(pipe, clip)
            # the first encoder of a pixel format in a process pays for its set-up: not in either number
            bare_transcode(clip, workdir / f"warm{suffix}", crf=cfg.crf, preset=cfg.preset, pixel_format=pixel_format,
                           keep_audio=cfg.keep_audio, limit=WARMUP_FRAMES)
            best_e2e, best_bare, best_stages = None, None, None
            for r in range(cfg.repeat):
                say(f"{name}: bare transcode" + (f" ({r + 1}/{cfg.repeat})" if cfg.repeat > 1 else ""))
                bare = bare_transcode(clip, workdir / f"bare{suffix}", crf=cfg.crf, preset=cfg.preset, pixel_format=pixel_format,
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
            w, h = _first_frame_size(workdir / f"e2e{suffix}")
        else:
            # no file output: stages from the pipeline alone, in file mode
            warm_up(pipe, clip)
            reader = VideoReader(clip)
            n = 0
            for _item, _matte, out in pipe.stream(reader, image_of=lambda f: f.image, mattes=False):
                h, w = out.shape[:2]
                n += 1
            stages.update(stage_summary(pipe.timer, n))
        run["width"], run["height"] = w, h
        run["stages"] = order_stages(stages)
        if cfg.live:
            say(f"{name}: live latency")
            live_pipe = _pipeline(cfg, live=True)
            try:
                warm_up(live_pipe, clip)
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
        run["width"], run["height"] = _first_frame_size(clip)
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
