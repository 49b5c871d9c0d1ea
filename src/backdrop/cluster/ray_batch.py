"""``backdrop batch``: many files through the pipeline on Ray, resumable, nothing half-written.

How a batch runs, and why:

* **The driver decides, workers compute.** The driver (this process) lists the inputs, hashes
  each one (sha256), reads the manifest in the output folder and skips every input whose output
  is already done from the same bytes with the same settings. Only the driver writes the
  manifest, so records never interleave. Nothing starts Ray when there is nothing to do.
* **One Ray task per file; long videos in chunks.** A video longer than about 1.5 chunk lengths
  is scanned (packets only), cut at keyframes (:mod:`.chunking`), its chunks run as separate
  tasks and a stitch task joins them by remuxing, with the audio copied from the source. If a
  chunked run cannot guarantee an exact result the file is redone in one piece.
* **Outputs only by rename.** Every writer goes through :func:`backdrop.io.atomic.atomic_output`,
  so an output is complete or absent. A worker killed mid-file (OOM, node lost) leaves at most a
  hidden ``.part`` file; Ray retries the task (``max_retries``) and the driver removes orphaned
  temp files of this batch's outputs at the start and at the end of every run.
* **Embedded Ray by default, a cluster on request.** Without ``--address`` a small private Ray
  instance starts (``address="local"``: never attaches to someone else's ``ray start``), no
  dashboard, worker logs not forwarded, listening on loopback only. ``--address HOST:PORT`` attaches as a driver to a
  running cluster; ``ray://HOST:PORT`` goes through Ray Client (needs ``ray[client]``). Inputs
  and the output folder must be visible at the same paths on every node (a shared file system).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import BackdropError, InputError, OptionError, OutputError
from ..io.atomic import is_temp_name
from ..io.image import IMAGE_SUFFIXES
from ..io.video import VIDEO_SUFFIXES
from ..pipeline import PipelineOptions
from .chunking import DEFAULT_TAIL, DEFAULT_WARMUP, Chunk, ChunkError, plan_chunks, remove_tree, render_chunk, scan, stitch
from .manifest import MANIFEST_NAME, WORK_NAME, Manifest, batch_lock, settings_hash, sha256_file

log = logging.getLogger(__name__)

CRASH_ENV = "BACKDROP_BATCH_CRASH_ONCE"
"""Test hook: a path. The first worker to reach frame 5 of a video creates it and dies with
``os._exit`` (no cleanup, as if killed), so tests can prove a killed worker's file is redone."""
CRASH_AFTER_FRAMES = 5
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


class ClusterError(BackdropError):
    """Ray is missing, or the cluster cannot be reached."""


# -- the report ---------------------------------------------------------------------------------

@dataclass
class BatchItem:
    """One input file and what became of it."""

    src: Path
    rel: str  # output path relative to the output folder (POSIX), the manifest key
    dst: Path
    media: str  # "video" or "image"
    status: str = "pending"  # done | skipped | failed
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    note: str = ""
    chunks: int = 1
    input_sha256: str = ""
    est_frames: int = 0


@dataclass
class BatchReport:
    items: list[BatchItem] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def table(self) -> str:
        """The end-of-batch summary: one row per file, reasons for skips and failures."""
        rows = [("STATUS", "FRAMES", "SECONDS", "CHUNKS", "FILE", "REASON")]
        for i in self.items:
            rows.append((i.status, str(i.frames) if i.status == "done" else "-",
                         f"{i.seconds:.1f}" if i.status == "done" else "-",
                         str(i.chunks) if i.status == "done" else "-", i.rel,
                         i.reason or i.note))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = []
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]),
                     r[3].rjust(widths[3]), r[4].ljust(widths[4]), r[5]]
            lines.append("  ".join(cells).rstrip())
        lines.append(self.totals())
        return "\n".join(lines)

    def totals(self) -> str:
        return (f"{self.count('done')} done, {self.count('skipped')} skipped, {self.count('failed')} failed "
                f"(of {len(self.items)}) in {self.seconds:.1f} s")


# -- inputs and outputs -------------------------------------------------------------------------

def discover_inputs(spec: str, out_dir: Path) -> tuple[Path, list[Path]]:
    """(root, files) for a folder (its media files, not recursive), one file, or a glob.

    A glob may use ``**`` for subfolders (quote it so the shell leaves it alone). Files inside
    the output folder and our own temp files are never inputs.
    """
    p = Path(os.path.expanduser(spec))
    if p.is_dir():
        root, files = p, [f for f in p.iterdir() if f.is_file()]
    elif p.is_file():
        if p.suffix.lower() not in MEDIA_SUFFIXES:
            raise InputError(f"not a video or image file: {p}")
        root, files = p.parent, [p]
    elif glob.has_magic(spec):
        parts = Path(os.path.expanduser(spec)).parts
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        root = Path(*fixed) if fixed else Path(".")
        files = [Path(x) for x in glob.glob(os.path.expanduser(spec), recursive=True)]
        files = [f for f in files if f.is_file()]
    else:
        raise InputError(f"input not found: {spec}")
    out_res = Path(out_dir).resolve()
    if root.resolve() == out_res:
        raise OutputError("the output folder is the input folder; choose another one")
    chosen = []
    for f in files:
        if f.suffix.lower() not in MEDIA_SUFFIXES or is_temp_name(f.name) or f.name == MANIFEST_NAME:
            continue
        try:
            fr = f.resolve()
        except OSError:
            continue
        if fr == out_res or out_res in fr.parents:
            continue
        chosen.append(f)
    chosen.sort(key=lambda f: str(f))
    if not chosen:
        kinds = "/".join(sorted(s.lstrip(".") for s in MEDIA_SUFFIXES))
        raise InputError(f"no video or image files ({kinds}) in {spec}")
    return root, chosen


def output_kind(background: Any) -> str:
    """``rgb``, ``rgba`` or ``gray`` for a background spec, without loading a model."""
    from ..compose.background import parse_background

    bg = parse_background(background)
    try:
        return {"transparent": "rgba", "matte": "gray"}.get(bg.mode, "rgb")
    finally:
        bg.close()


def output_rel(rel: Path, media: str, kind: str) -> Path:
    """Where an input's output goes, relative to the output folder (suffix fixed for alpha)."""
    suffix = rel.suffix.lower()
    if media == "image":
        if kind == "rgba" and suffix in (".jpg", ".jpeg", ".bmp"):
            return rel.with_suffix(".png")
        return rel
    if kind == "rgba" and suffix not in (".mov", ".webm", ".mkv"):
        return rel.with_suffix(".mov")
    return rel


def _settings(background: Any, options: PipelineOptions, crf: int, preset: str, keep_audio: bool) -> dict:
    """Everything that changes an output's content; a change means the output is redone."""
    opts = {k: v for k, v in asdict(options).items() if k not in ("quiet", "threads")}
    bg: Any = str(background)
    bg_path = Path(os.path.expanduser(str(background)))
    if bg_path.is_file():
        bg = {"file": bg_path.name, "sha256": sha256_file(bg_path)}
    model = Path(os.path.expanduser(str(options.model)))
    if model.suffix.lower() in (".tflite", ".onnx") and model.is_file():
        opts["model"] = {"file": model.name, "sha256": sha256_file(model)}
    return {"backdrop": __version__, "options": opts, "background": bg, "crf": crf, "preset": preset,
            "audio": bool(keep_audio)}


def _temp_pattern(dst: Path) -> re.Pattern:
    # names tempfile.mkstemp gives atomic_output's temp files for this destination
    return re.compile(rf"^\.{re.escape(dst.stem)}\.[a-z0-9_]{{8}}\.part{re.escape(dst.suffix)}$")


def remove_orphans(out_dir: Path, dsts: list[Path]) -> int:
    """Delete temp files of these outputs (a killed worker's leftovers) and the work folder."""
    removed = 0
    by_dir: dict[Path, list[re.Pattern]] = {}
    for d in dsts:
        by_dir.setdefault(d.parent, []).append(_temp_pattern(d))
    for folder, patterns in by_dir.items():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and any(p.match(name) for p in patterns):
                try:
                    (folder / name).unlink()
                    removed += 1
                except OSError:
                    pass
    remove_tree(Path(out_dir) / WORK_NAME)
    return removed


# -- worker side (plain functions; Ray wraps them) ---------------------------------------------

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

    def stream(self, items, image_of=lambda x: x):
        def counted():
            for i, item in enumerate(items):
                if i == CRASH_AFTER_FRAMES:
                    _maybe_crash(self._marker)
                yield item
        return self._pipe.stream(counted(), image_of=image_of)


def _make_pipeline(job: dict):
    from ..pipeline import Pipeline

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
                return {"status": "done", "frames": 1, "seconds": time.perf_counter() - t0,
                        "output_size": _size(dst)}
            runner = _CrashingPipeline(pipe, job["crash_marker"]) if job.get("crash_marker") else pipe
            stats = process_video(src, dst, pipeline=runner, crf=job["crf"], preset=job["preset"],
                                  keep_audio=job["keep_audio"], quiet=True)
            note = ""
            if stats.get("truncated"):
                note = f"input truncated or damaged: {stats['frames']} frames decoded"
            return {"status": "done", "frames": stats["frames"], "seconds": time.perf_counter() - t0,
                    "output_size": _size(dst), "note": note}
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
            return {"status": "done", "frames": n, "seconds": seconds, "output_size": _size(dst),
                    "chunks": len(results)}
        except ChunkError as exc:
            return {"status": "fallback", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001
            return _failed(exc)
        finally:
            remove_tree(work)


# -- Ray plumbing --------------------------------------------------------------------------------

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError("backdrop batch needs Ray: pip install 'backdrop[cluster]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, *, num_cpus: int = 2):
    """Connect to (or start) Ray for the duration; reuse a session the caller already opened.

    ``ray.init`` replaces the SIGTERM handler; ours (which turns SIGTERM into a clean exit
    with partial outputs removed) is put back straight after.
    """
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    handler = signal.getsignal(signal.SIGTERM)
    private_tmp = None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                              "include_dashboard": False}
    if address:
        _check_reachable(address)
        if address.startswith("ray://"):
            try:
                import grpc  # noqa: F401
            except ImportError:
                raise ClusterError("ray:// addresses need the Ray client: pip install 'ray[client]'") from None
            kwargs.pop("include_dashboard")
        target = address
    else:
        target = "local"
        # a private session folder, removed afterwards: no logs pile up in /tmp/ray, and no
        # other program's plain ray.init() finds this instance as "the latest cluster"
        private_tmp = tempfile.mkdtemp(prefix="backdrop-ray-")
        kwargs.update(num_cpus=int(num_cpus), object_store_memory=96 * 1024 * 1024, _temp_dir=private_tmp)
    saved_env = os.environ.get(_LOOPBACK_ENV)
    if not address:
        # Ray's own switch (meant for laptops) that makes every service of the embedded
        # instance listen on 127.0.0.1 only: nothing off this machine can reach it
        os.environ[_LOOPBACK_ENV] = "0"
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        if private_tmp:
            shutil.rmtree(private_tmp, ignore_errors=True)
        raise ClusterError(f"cannot connect to {where}: {first}") from None
    finally:
        if not address:
            if saved_env is None:
                os.environ.pop(_LOOPBACK_ENV, None)
            else:
                os.environ[_LOOPBACK_ENV] = saved_env
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
    try:
        yield ray
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if private_tmp:
            shutil.rmtree(private_tmp, ignore_errors=True)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


class _DeferredSigterm:
    """Turn SIGTERM into a flag while the driver sits in Ray's C++ calls, re-raise it from Python.

    A Python signal handler that raises (the CLI turns SIGTERM into an exception so cleanup
    runs) inside ``ray.wait`` surfaces as ``SystemError: ... returned a result with an
    exception set`` and a traceback. The flag is checked at least once a second; then the
    previous handler runs from plain Python code (or ``SystemExit(143)`` without one), and the
    usual cleanup (cancel tasks, remove temp files) follows.
    """

    def __init__(self):
        self.hit = False
        self.old = None
        self.installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.getsignal(signal.SIGTERM)
            if self.old is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, self._on)
                self.installed = True
        return self

    def _on(self, signum, frame) -> None:
        self.hit = True

    def check(self) -> None:
        if not self.hit:
            return
        self.hit = False
        self._restore()
        if callable(self.old):
            self.old(signal.SIGTERM, None)
        raise SystemExit(128 + signal.SIGTERM)

    def _restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.old if self.old is not None else signal.SIG_DFL)
            self.installed = False

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.check()  # a SIGTERM during Ray's shutdown is not lost
        self._restore()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on: Ray itself retries for 20-30 s first."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--address must be HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def _ray_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    if "WorkerCrashed" in name or "NodeDied" in name or "OutOfMemory" in name:
        return f"worker died and the retries ran out ({name})"
    return f"{name}: {text[0][:200] if text else ''}"


# -- the driver ---------------------------------------------------------------------------------

class _Progress:
    """Frames done across the whole batch: a bar on a terminal, a line per file otherwise."""

    def __init__(self, total_files: int, quiet: bool):
        from tqdm import tqdm

        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.total_files = total_files
        self.files_done = 0
        self.bar = tqdm(total=0, unit="frame", desc="batch", disable=quiet or not self.tty, dynamic_ncols=True,
                        leave=False)

    def add_total(self, n: int) -> None:
        if n > 0 and not self.bar.disable:
            self.bar.total = (self.bar.total or 0) + n
            self.bar.refresh()

    def frames(self, n: int) -> None:
        if n > 0:
            self.bar.update(n)

    def file(self, item: BatchItem) -> None:
        self.files_done += 1
        if self.quiet:
            return
        extra = f"{item.frames} frames, {item.seconds:.1f} s" if item.status == "done" else item.reason
        line = f"backdrop: [{self.files_done}/{self.total_files}] {item.status} {item.rel} ({extra})"
        if self.tty:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


def run_batch(inputs: str, out_dir: str | Path, *, background: Any = "blur",
              options: PipelineOptions | None = None, crf: int = 20, preset: str = "veryfast",
              keep_audio: bool = True, address: str | None = None, num_cpus: int = 2, cpus_per_task: int = 1,
              chunk_seconds: float = 60.0, warmup: int = DEFAULT_WARMUP, retries: int = 2,
              quiet: bool = False) -> BatchReport:
    """Process every video/image of ``inputs`` into ``out_dir``; see the module docstring."""
    t_start = time.perf_counter()
    options = (options or PipelineOptions()).validate()
    if not 0 <= crf <= 51:
        raise OptionError(f"--crf must be between 0 and 51, got {crf}")
    if cpus_per_task < 1 or num_cpus < 1 or retries < 0 or warmup < 0:
        raise OptionError("--num-cpus and --cpus-per-task must be >= 1, --retries and --warmup >= 0")
    _import_ray()
    if address:
        _check_reachable(address)  # before anything is created
    out = Path(os.path.expanduser(str(out_dir)))
    if out.exists() and not out.is_dir():
        raise OutputError(f"output for a batch must be a folder: {out}")
    root, files = discover_inputs(str(inputs), out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {out}")
    kind = output_kind(background)  # also refuses a bad --background before anything runs

    report = BatchReport()
    seen: dict[Path, BatchItem] = {}
    for f in files:
        media = "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image"
        rel = output_rel(f.relative_to(root), media, kind)
        dst = out / rel
        item = BatchItem(src=f, rel=rel.as_posix(), dst=dst, media=media)
        if dst.resolve() == f.resolve():
            raise OutputError("the output folder is the input folder; choose another one")
        if dst in seen:
            item.status, item.reason = "failed", f"output name collides with {seen[dst].src.name}"
        else:
            seen[dst] = item
        report.items.append(item)

    settings = _settings(background, options, crf, preset, keep_audio)
    shash = settings_hash(settings)
    env = {k: v for k, v in os.environ.items() if k.startswith("BACKDROP_") and k != CRASH_ENV}
    crash_marker = os.environ.get(CRASH_ENV) or None

    with batch_lock(out):
        dsts = [i.dst for i in report.items]
        remove_orphans(out, dsts)
        manifest = Manifest(out)
        pending: list[BatchItem] = []
        for item in report.items:
            if item.status == "failed":
                continue
            try:
                item.input_sha256 = sha256_file(item.src)
            except OSError as exc:
                item.status, item.reason = "failed", f"input is not readable: {exc.strerror}"
                continue
            if manifest.is_done(item.rel, item.input_sha256, shash, item.dst):
                item.status, item.reason = "skipped", "already done (same input and settings)"
                continue
            pending.append(item)

        progress = _Progress(len(report.items), quiet)
        for item in report.items:
            if item.status in ("skipped", "failed"):
                progress.file(item)
        try:
            if pending:
                _run_pending(pending, out, manifest, shash, progress, background=background, options=options,
                             crf=crf, preset=preset, keep_audio=keep_audio, address=address, num_cpus=num_cpus,
                             cpus_per_task=cpus_per_task, chunk_seconds=chunk_seconds, warmup=warmup,
                             retries=retries, env=env, crash_marker=crash_marker)
        finally:
            progress.close()
            remove_orphans(out, dsts)
    report.seconds = time.perf_counter() - t_start
    return report


def _run_pending(pending: list[BatchItem], out: Path, manifest: Manifest, shash: str, progress: _Progress, *,
                 background, options, crf, preset, keep_audio, address, num_cpus, cpus_per_task, chunk_seconds,
                 warmup, retries, env, crash_marker) -> None:
    from ..models.registry import resolve

    resolve(options.model, quiet=options.quiet)  # fetch once here, not in every worker at once
    opts = asdict(options)
    work_root = out / WORK_NAME

    owned = not _import_ray().is_initialized()
    with _DeferredSigterm() as term, ray_session(address, num_cpus=num_cpus) as ray:
        term.check()
        task_opts = {"num_cpus": cpus_per_task, "max_retries": retries, "retry_exceptions": False}
        whole_fn = ray.remote(run_whole).options(**task_opts)
        chunk_fn = ray.remote(run_chunk).options(**task_opts)
        stitch_fn = ray.remote(run_stitch).options(num_cpus=1, max_retries=retries,
                                                   retry_exceptions=False)
        refs: dict[Any, tuple[str, BatchItem]] = {}

        def job_for(item: BatchItem) -> dict:
            return {"src": str(item.src), "dst": str(item.dst), "media": item.media, "background": background,
                    "options": opts, "crf": crf, "preset": preset, "keep_audio": keep_audio, "cpus": cpus_per_task,
                    "env": env, "crash_marker": crash_marker, "warmup": warmup,
                    # one folder per output (two inputs may have the same bytes)
                    "work": str(work_root / hashlib.sha256(f"{item.rel}\0{shash}".encode()).hexdigest()[:20])}

        def submit_whole(item: BatchItem) -> None:
            refs[whole_fn.remote(job_for(item))] = ("final", item)

        def finish(item: BatchItem, result: dict) -> None:
            item.status = result.get("status", "failed")
            item.frames = int(result.get("frames") or 0)
            item.seconds = float(result.get("seconds") or 0.0)
            item.reason = result.get("reason", "") if item.status == "failed" else ""
            item.note = result.get("note", "")
            item.chunks = int(result.get("chunks") or 1)
            if result.get("traceback"):
                log.debug("%s failed:\n%s", item.rel, result["traceback"])
            manifest.append({"output": item.rel, "input": str(item.src.resolve()), "input_sha256": item.input_sha256,
                             "settings": shash, "status": item.status, "frames": item.frames,
                             "seconds": round(item.seconds, 3), "output_size": result.get("output_size"),
                             "chunks": item.chunks, "reason": item.reason, "note": item.note})
            progress.file(item)

        try:
            for item in pending:
                term.check()
                item.dst.parent.mkdir(parents=True, exist_ok=True)
                chunks: list[Chunk] = []
                if item.media == "image":
                    item.est_frames = 1
                else:
                    item.est_frames, seconds = _header_info(item.src)
                    # the packet scan reads the whole file: only for videos long enough to split
                    if chunk_seconds > 0 and (seconds is None or seconds >= 1.5 * chunk_seconds):
                        try:
                            sc = scan(item.src)
                            item.est_frames = sc.frames
                            if sc.duration >= 1.5 * chunk_seconds:
                                chunks = plan_chunks(sc, chunk_seconds)
                        except BackdropError:
                            chunks = []  # the whole-file task reports the error in full
                progress.add_total(item.est_frames)
                if len(chunks) > 1:
                    job = job_for(item)
                    Path(job["work"]).mkdir(parents=True, exist_ok=True)
                    pts_ref = ray.put(sc.pts)
                    chunk_refs = []
                    for c in chunks:
                        cd = asdict(c)
                        cd["pts"] = []  # the task gets the full list once, by reference
                        r = chunk_fn.remote(job, cd, pts_ref)
                        refs[r] = ("chunk", item)
                        chunk_refs.append(r)
                    refs[stitch_fn.remote(job, sc.time_base, sc.rate, *chunk_refs)] = ("final", item)
                else:
                    submit_whole(item)

            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=1.0)
                term.check()
                for ref in ready:
                    role, item = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # noqa: BLE001 - a task that could not finish
                        if role == "final":
                            finish(item, {"status": "failed", "reason": _ray_reason(exc)})
                        continue
                    if role == "chunk":
                        if result.get("status") == "done":
                            progress.frames(result.get("frames", 0))
                        continue
                    if result.get("status") == "fallback":
                        log.info("%s: chunked run not exact (%s); processing it in one piece",
                                 item.rel, result.get("reason"))
                        progress.add_total(item.est_frames)
                        submit_whole(item)
                        continue
                    if result.get("status") == "done" and result.get("chunks", 1) == 1:
                        progress.frames(result.get("frames", 0))
                    finish(item, result)
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM) or a driver bug. A session we started is shut down
            # on the way out, which kills its workers; on a cluster, the end of this driver's
            # job makes Ray kill its tasks. Either way the caller then removes their temp
            # files. No ray.cancel(force=True) here: racing a task that is just finishing, it
            # can abort the driver inside Ray ("Tried to complete task that was not pending"),
            # which would skip that cleanup. A session the caller owns only gets polite cancels.
            if not owned:
                for ref in list(refs):
                    with contextlib.suppress(Exception):
                        ray.cancel(ref)
            raise


def _header_info(path: Path) -> tuple[int, float | None]:
    """(frame count, duration in seconds or None) from the container header, for planning."""
    from ..io.video import VideoReader

    try:
        r = VideoReader(path)
    except BackdropError:
        return 0, 0.0  # unreadable: the task reports why
    try:
        seconds = None
        if r.stream.duration:
            seconds = float(r.stream.duration * r.time_base)
        elif r.container.duration:
            seconds = r.container.duration / 1_000_000
        return r.frame_count, seconds
    finally:
        r.close()
