"""The worker side of a batch: plain functions the driver hands to Ray as tasks.

Each takes a *job*, a small picklable dict the driver builds (paths, background, options as a
dict, encoder settings, the driver's ``BACKDROP_*`` environment), so a worker needs nothing
from the driver's memory and a task can be retried anywhere. They never raise: a user error
comes back as ``{"status": "failed", "reason": <one line>}``, a chunked run that cannot be
exact as ``{"status": "fallback"}`` (the driver redoes the file in one piece), and only a
worker that dies outright surfaces as a Ray error. Being plain functions, they also run
without Ray, which is how the tests call them.
"""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from pathlib import Path

from ..errors import BackdropError
from ..engine import PipelineOptions
from .chunking import DEFAULT_TAIL, DEFAULT_WARMUP, Chunk, ChunkError, remove_tree, render_chunk, stitch

CRASH_ENV = "BACKDROP_BATCH_CRASH_ONCE"
"""Test hook: a path. The first worker to reach frame 5 of a video creates it and dies with
``os._exit`` (no cleanup, as if killed), so tests can prove a killed worker's file is redone."""
CRASH_AFTER_FRAMES = 5


@contextlib.contextmanager
def _job_env(job: dict):
    """Apply the driver's BACKDROP_* settings (pixel limit, model folder) inside a worker."""
    saved = {k: os.environ.get(k) for k in job.get("env", {})}
    os.environ.update(job.get("env", {}))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _maybe_crash(marker: str | None) -> None:
    if not marker:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os._exit(3)  # die like a killed process: no cleanup, no exception handling


class _CrashingPipeline:
    """Wraps a Pipeline so the test hook fires mid-file inside process_video."""

    def __init__(self, pipe, marker: str):
        self._pipe, self._marker = pipe, marker

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def stream(self, items, image_of=lambda x: x, **kwargs):
        def counted():
            for i, item in enumerate(items):
                if i == CRASH_AFTER_FRAMES:
                    _maybe_crash(self._marker)
                yield item
        return self._pipe.stream(counted(), image_of=image_of, **kwargs)


def _make_pipeline(job: dict):
    from ..engine import Pipeline
    from ..heap import keep_frame_buffers

    keep_frame_buffers()  # a Ray worker does not come through the command line's main (heap.py)
    opts = dict(job["options"])
    if opts.get("threads") is None:
        opts["threads"] = job.get("cpus", 1)
    opts["quiet"] = True
    return Pipeline(background=job["background"], options=PipelineOptions(**opts))


def _failed(exc: BaseException) -> dict:
    if isinstance(exc, BackdropError):
        return {"status": "failed", "reason": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
    return {"status": "failed", "reason": f"internal error: {type(exc).__name__}: {str(exc)[:200]}",
            "traceback": traceback.format_exc()}


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return -1


def _written(path: Path) -> dict:
    """Size and sha256 of a just-written output, for the manifest (a rerun checks both)."""
    from ..hashing import sha256_file

    try:
        digest = sha256_file(Path(path))
    except OSError:
        digest = ""
    return {"output_size": _size(path), "output_sha256": digest}


def run_whole(job: dict) -> dict:
    """Process one file in one piece (a Ray task; also callable directly)."""
    from ..process import process_image, process_video

    t0 = time.perf_counter()
    pipe = None
    with _job_env(job):
        try:
            pipe = _make_pipeline(job)
            src, dst = Path(job["src"]), Path(job["dst"])
            if job["media"] == "image":
                process_image(src, dst, pipeline=pipe, quiet=True)
                return {"status": "done", "frames": 1, "seconds": time.perf_counter() - t0, **_written(dst)}
            runner = _CrashingPipeline(pipe, job["crash_marker"]) if job.get("crash_marker") else pipe
            stats = process_video(src, dst, pipeline=runner, crf=job["crf"], preset=job["preset"],
                                  keep_audio=job["keep_audio"], quiet=True)
            note = ""
            truncated = bool(stats.get("truncated"))
            if truncated:
                note = (f"input truncated or damaged: {stats['frames']} frames decoded, "
                        f"{int(stats.get('bad_packets') or 0)} undecodable packets")
            return {"status": "done", "frames": stats["frames"], "seconds": time.perf_counter() - t0,
                    **_written(dst), "note": note, "truncated": truncated,
                    "bad_packets": int(stats.get("bad_packets") or 0)}
        except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
            return _failed(exc)
        finally:
            if pipe is not None:
                pipe.close()


def run_chunk(job: dict, chunk: dict, all_pts: list[int]) -> dict:
    """Process one chunk of a video into the work folder (a Ray task)."""
    t0 = time.perf_counter()
    pipe = None
    with _job_env(job):
        try:
            pipe = _make_pipeline(job)
            c = Chunk(**chunk)
            path = Path(job["work"]) / f"chunk-{c.index:05d}{Path(job['dst']).suffix}"
            marker = job.get("crash_marker")

            def on_frame(n: int) -> None:
                if n == CRASH_AFTER_FRAMES and c.index == 1:
                    _maybe_crash(marker)

            kept = render_chunk(Path(job["src"]), path, c, all_pts, pipe, crf=job["crf"], preset=job["preset"],
                                suffix=Path(job["dst"]).suffix, warmup=job.get("warmup", DEFAULT_WARMUP),
                                tail=DEFAULT_TAIL, on_frame=on_frame if marker else None)
            return {"status": "done", "path": str(path), "pts": kept, "frames": len(kept),
                    "seconds": time.perf_counter() - t0}
        except ChunkError as exc:
            return {"status": "fallback", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001
            return _failed(exc)
        finally:
            if pipe is not None:
                pipe.close()


def run_stitch(job: dict, time_base, rate, *results: dict) -> dict:
    """Join finished chunks into the output (a Ray task; runs once all chunks are done)."""
    from ..io.atomic import atomic_output

    t0 = time.perf_counter()
    work = Path(job["work"])
    with _job_env(job):
        try:
            for r in results:
                if r.get("status") == "failed":
                    return r
            for r in results:
                if r.get("status") != "done":
                    return {"status": "fallback", "reason": r.get("reason", "chunk not done")}
            parts = [(Path(r["path"]), r["pts"]) for r in results]
            dst = Path(job["dst"])
            with atomic_output(dst) as tmp:
                n = stitch(parts, tmp, time_base=time_base, rate=rate,
                           audio_from=Path(job["src"]) if job["keep_audio"] else None, suffix=dst.suffix)
            seconds = sum(r["seconds"] for r in results) + (time.perf_counter() - t0)
            return {"status": "done", "frames": n, "seconds": seconds, **_written(dst), "chunks": len(results)}
        except ChunkError as exc:
            return {"status": "fallback", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001
            return _failed(exc)
        finally:
            remove_tree(work)
