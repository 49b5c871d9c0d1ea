"""The driver of ``backdrop batch``: decide what to do, hand it to Ray, record what came back.

* **The driver decides, workers compute.** :func:`run_batch` lists the inputs, hashes each one
  (sha256), reads the manifest in the output folder and skips every input whose output is
  already done from the same bytes with the same settings (:mod:`.settings`). Only the driver
  writes the manifest, so records never interleave. Nothing starts Ray when there is nothing
  to do.
* **One Ray task per file; long videos in chunks.** A video longer than about 1.5 chunk
  lengths is scanned (packets only), cut at keyframes (:mod:`.chunking`), its chunks run as
  separate tasks and a stitch task joins them by remuxing, with the audio copied from the
  source. If a chunked run cannot guarantee an exact result the file is redone in one piece.
* **Outputs only by rename.** Every writer goes through :func:`backdrop.io.atomic.atomic_output`,
  so an output is complete or absent. A worker killed mid-file (OOM, node lost) leaves at most
  a hidden ``.part`` file; Ray retries the task (``max_retries``) and the driver removes
  orphaned temp files of this batch's outputs at the start and at the end of every run.

A :class:`BatchRun` holds what every job of one run shares (output folder, manifest, settings
hash, progress, options) so scheduling is a few short methods instead of one long function
with every setting as a parameter.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BackdropError, OptionError, OutputError
from ..io.video import VIDEO_SUFFIXES, validate_encoder_options
from ..engine import PipelineOptions
from .chunking import DEFAULT_WARMUP, Chunk, VideoScan, plan_chunks, scan
from .inputs import discover_inputs, output_pixel_format, output_rel, remove_orphans
from .jobs import CRASH_ENV, run_chunk, run_stitch, run_whole
from ..hashing import sha256_file
from ..io.atomic import make_folder
from ..io.video_read import cut_short
from .manifest import WORK_NAME, Manifest, batch_lock
from .progress import Progress
from .report import BatchItem, BatchReport
from .session import DeferredSigterm, check_reachable, check_resources, import_ray, ray_reason, ray_session
from .settings import batch_settings_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """The settings of one :func:`run_batch` call; :meth:`validate` refuses bad ones up front."""

    background: Any = "blur"
    options: PipelineOptions = field(default_factory=PipelineOptions)
    crf: int = 20
    preset: str = "veryfast"
    keep_audio: bool = True
    address: str | None = None
    num_cpus: int = 2
    cpus_per_task: int = 1
    chunk_seconds: float = 60.0
    warmup: int = DEFAULT_WARMUP
    retries: int = 2
    quiet: bool = False

    def validate(self) -> BatchOptions:
        """Encoder and resource settings (the pipeline options are validated by their own class)."""
        validate_encoder_options(self.crf, self.preset)
        for name, low in (("num_cpus", 1), ("cpus_per_task", 1), ("retries", 0), ("warmup", 0)):
            if getattr(self, name) < low:
                raise OptionError(f"{{option}} must be at least {low}, got {getattr(self, name)}", option=name)
        return self


def _backdrop_env() -> dict[str, str]:
    """The driver's BACKDROP_* settings (pixel limit, model folder), applied in every worker."""
    return {k: v for k, v in os.environ.items() if k.startswith("BACKDROP_") and k != CRASH_ENV}


@dataclass
class _Tasks:
    """The three job functions as Ray remote functions, with this batch's resources and retries."""

    whole: Any
    chunk: Any
    stitch: Any

    @classmethod
    def make(cls, ray, opts: BatchOptions) -> _Tasks:
        task_opts = {"num_cpus": opts.cpus_per_task, "max_retries": opts.retries, "retry_exceptions": False}
        return cls(ray.remote(run_whole).options(**task_opts), ray.remote(run_chunk).options(**task_opts),
                   ray.remote(run_stitch).options(num_cpus=1, max_retries=opts.retries, retry_exceptions=False))


@dataclass
class BatchRun:
    """One run over one output folder: submits the pending items, records each as it ends."""

    out: Path
    manifest: Manifest
    shash: str
    progress: Progress
    opts: BatchOptions
    env: dict[str, str] = field(default_factory=_backdrop_env)
    crash_marker: str | None = field(default_factory=lambda: os.environ.get(CRASH_ENV) or None)
    refs: dict[Any, tuple[str, BatchItem]] = field(default_factory=dict)  # in flight: ref -> (role, item)

    def job_for(self, item: BatchItem) -> dict:
        """The picklable description of one item that every task of it receives."""
        o = self.opts
        return {"src": str(item.src), "dst": str(item.dst), "media": item.media, "background": o.background,
                "options": asdict(o.options), "crf": o.crf, "preset": o.preset, "keep_audio": o.keep_audio,
                "cpus": o.cpus_per_task, "env": self.env, "crash_marker": self.crash_marker, "warmup": o.warmup,
                # one folder per output (two inputs may have the same bytes)
                "work": str(self.out / WORK_NAME
                            / hashlib.sha256(f"{item.rel}\0{self.shash}".encode()).hexdigest()[:20])}

    def run(self, pending: list[BatchItem]) -> None:
        """Process ``pending`` on Ray and record every result; returns when all are recorded."""
        from ..models.registry import resolve

        resolve(self.opts.options.model, quiet=self.opts.options.quiet)  # once here, not in every worker
        owned = not import_ray().is_initialized()
        with DeferredSigterm() as term, ray_session(self.opts.address, num_cpus=self.opts.num_cpus) as ray:
            term.check()
            where = f"the Ray cluster at {self.opts.address}" if self.opts.address else "the Ray session"
            check_resources(ray, self.opts.cpus_per_task, where)  # else its tasks wait forever
            tasks = _Tasks.make(ray, self.opts)
            try:
                for item in pending:
                    term.check()
                    self._check_out()
                    self._submit(ray, tasks, item)
                while self.refs:
                    ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=1.0)
                    term.check()
                    self._check_out()
                    for ref in ready:
                        self._collect(ray, tasks, ref)
            except BaseException:
                # Interrupted (Ctrl-C, SIGTERM) or a driver bug. A session we started is shut down
                # on the way out, which kills its workers; on a cluster, the end of this driver's
                # job makes Ray kill its tasks. Either way the caller then removes their temp
                # files. No ray.cancel(force=True) here: racing a task that is just finishing, it
                # can abort the driver inside Ray ("Tried to complete task that was not pending"),
                # which would skip that cleanup. A session the caller owns only gets polite cancels.
                if not owned:
                    for ref in list(self.refs):
                        with contextlib.suppress(Exception):
                            ray.cancel(ref)
                raise

    def _check_out(self) -> None:
        """Stop at once when the output folder is deleted under the batch (its workers fail at their
        next write check; nothing must recreate the folder for the next items)."""
        if not self.out.is_dir():
            raise OutputError(f"output folder {self.out} was removed while the batch ran; stopped")

    def _plan(self, item: BatchItem) -> tuple[list[Chunk], VideoScan | None]:
        """Chunks for a long enough video (with its scan), else none; sets ``est_frames``."""
        if item.media == "image":
            item.est_frames = 1
            return [], None
        item.est_frames, seconds, declared, end = _header_info(item.src)
        every = self.opts.chunk_seconds
        # the packet scan reads the whole file: only for videos long enough to split
        if every > 0 and (seconds is None or seconds >= 1.5 * every):
            try:
                sc = scan(item.src)
                item.est_frames = sc.frames
                if sc.duration >= 1.5 * every:
                    # chunks make exactly the frames the scan found: judged by the reader's rule
                    # (a count for MP4, the last timestamp against the duration for MKV/WebM)
                    item.truncated = cut_short(declared_frames=declared, frames=sc.frames, declared_end=end,
                                               **sc.last_frame())
                    return plan_chunks(sc, every), sc
            except BackdropError:
                pass  # the whole-file task reports the error in full
        return [], None

    def _submit(self, ray, tasks: _Tasks, item: BatchItem) -> None:
        item.dst.parent.mkdir(parents=True, exist_ok=True)
        chunks, sc = self._plan(item)
        self.progress.add_total(item.est_frames)
        if len(chunks) <= 1:
            self._submit_whole(tasks, item)
            return
        job = self.job_for(item)
        Path(job["work"]).mkdir(parents=True, exist_ok=True)
        pts_ref = ray.put(sc.pts)
        chunk_refs = []
        for c in chunks:
            cd = asdict(c)
            cd["pts"] = []  # the task gets the full list once, by reference
            r = tasks.chunk.remote(job, cd, pts_ref)
            self.refs[r] = ("chunk", item)
            chunk_refs.append(r)
        self.refs[tasks.stitch.remote(job, sc.time_base, sc.rate, *chunk_refs)] = ("final", item)

    def _submit_whole(self, tasks: _Tasks, item: BatchItem) -> None:
        self.refs[tasks.whole.remote(self.job_for(item))] = ("final", item)

    def _collect(self, ray, tasks: _Tasks, ref) -> None:
        """Take one finished task: count a chunk, redo a fallback in one piece, record a file."""
        role, item = self.refs.pop(ref)
        self._check_out()  # a task failed because the folder went: say that, not what it failed on
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - a task that could not finish
            if role == "final":
                self.finish(item, {"status": "failed", "reason": ray_reason(exc)})
            return
        if role == "chunk":
            if result.get("status") == "done":
                self.progress.frames(result.get("frames", 0))
            return
        if result.get("status") == "fallback":
            item.truncated = False  # the whole-file run decides
            log.info("%s: chunked run not exact (%s); processing it in one piece", item.rel, result.get("reason"))
            self.progress.add_total(item.est_frames)
            self._submit_whole(tasks, item)
            return
        if result.get("status") == "done" and result.get("chunks", 1) == 1:
            self.progress.frames(result.get("frames", 0))
        self.finish(item, result)

    def finish(self, item: BatchItem, result: dict) -> None:
        """Copy a file's result into its item, append its manifest record, report it."""
        item.status = result.get("status", "failed")
        item.frames = int(result.get("frames") or 0)
        item.seconds = float(result.get("seconds") or 0.0)
        item.reason = result.get("reason", "") if item.status == "failed" else ""
        item.note = result.get("note", "")
        item.chunks = int(result.get("chunks") or 1)
        item.truncated = item.status == "done" and bool(result.get("truncated") or item.truncated)
        if item.truncated and not item.note:
            item.note = f"input truncated or damaged: {item.frames} frames decoded"
        digest = result.get("output_sha256") or ""
        if item.status == "done" and not digest:
            try:  # a worker that did not hash its output: hash it here
                digest = sha256_file(item.dst)
            except OSError:
                digest = ""
        if result.get("traceback"):
            log.debug("%s failed:\n%s", item.rel, result["traceback"])
        self.manifest.append({"output": item.rel, "input": str(item.src.resolve()), "input_sha256": item.input_sha256,
                              "settings": self.shash, "status": item.status, "frames": item.frames,
                              "seconds": round(item.seconds, 3), "output_size": result.get("output_size"),
                              "output_sha256": digest, "truncated": item.truncated,
                              "chunks": item.chunks, "reason": item.reason, "note": item.note})
        self.progress.file(item)


def run_batch(inputs: str, out_dir: str | Path, *, background: Any = "blur",
              options: PipelineOptions | None = None, crf: int = 20, preset: str = "veryfast",
              keep_audio: bool = True, address: str | None = None, num_cpus: int = 2, cpus_per_task: int = 1,
              chunk_seconds: float = 60.0, warmup: int = DEFAULT_WARMUP, retries: int = 2,
              quiet: bool = False) -> BatchReport:
    """Process every video/image of ``inputs`` into ``out_dir``; see the module docstring."""
    t_start = time.perf_counter()
    options = (options or PipelineOptions()).validate()
    opts = BatchOptions(background=background, options=options, crf=crf, preset=preset,
                        keep_audio=keep_audio, address=address, num_cpus=num_cpus, cpus_per_task=cpus_per_task,
                        chunk_seconds=chunk_seconds, warmup=warmup, retries=retries, quiet=quiet).validate()
    ray = import_ray()
    if address:
        check_reachable(address)  # before anything is created
    elif not ray.is_initialized() and cpus_per_task > num_cpus:
        raise OptionError(f"{{option}} {cpus_per_task} can never run on a local Ray instance of {num_cpus} "
                          f"CPUs (raise --num-cpus or lower {{option}})", option="cpus_per_task")
    out = Path(os.path.expanduser(str(out_dir)))
    if out.exists() and not out.is_dir():
        raise OutputError(f"output for a batch must be a folder: {out}")
    root, files = discover_inputs(str(inputs), out)
    make_folder(out)
    pixel_format = output_pixel_format(background)  # also refuses a bad --background before anything runs

    report = BatchReport(items=_items(root, files, out, pixel_format))
    shash = batch_settings_hash(background, options, crf, preset, keep_audio)
    with batch_lock(out):
        dsts = [i.dst for i in report.items]
        remove_orphans(out, dsts)
        manifest = Manifest(out)
        pending = _pending(report.items, manifest, shash)
        batch = BatchRun(out, manifest, shash, Progress(len(report.items), quiet), opts)
        for item in report.items:
            if item.status in ("skipped", "failed"):
                batch.progress.file(item)
        try:
            if pending:
                batch.run(pending)
        finally:
            batch.progress.close()
            remove_orphans(out, dsts)
    report.seconds = time.perf_counter() - t_start
    return report


def _items(root: Path, files: list[Path], out: Path, pixel_format: str) -> list[BatchItem]:
    """One item per input with its output path; an output two inputs would share fails both but one."""
    items: list[BatchItem] = []
    seen: dict[Path, BatchItem] = {}
    for f in files:
        media = "video" if f.suffix.lower() in VIDEO_SUFFIXES else "image"
        rel = output_rel(f.relative_to(root), media, pixel_format)
        dst = out / rel
        item = BatchItem(src=f, rel=rel.as_posix(), dst=dst, media=media)
        if dst.resolve() == f.resolve():
            raise OutputError("the output folder is the input folder; choose another one")
        if dst in seen:
            item.status, item.reason = "failed", f"output name collides with {seen[dst].src.name}"
        else:
            seen[dst] = item
        items.append(item)
    return items


def _pending(items: list[BatchItem], manifest: Manifest, shash: str) -> list[BatchItem]:
    """The items still to do: hash each input, mark unreadable ones failed and finished ones skipped."""
    pending: list[BatchItem] = []
    for item in items:
        if item.status == "failed":
            continue
        try:
            item.input_sha256 = sha256_file(item.src)
        except OSError as exc:
            item.status, item.reason = "failed", f"input is not readable: {exc.strerror}"
            continue
        if manifest.is_done(item.rel, item.input_sha256, shash, item.dst):
            item.status, item.reason = "skipped", "already done (same input and settings)"
            item.truncated = manifest.last[item.rel].get("truncated") is True
            continue
        pending.append(item)
    return pending


def _header_info(path: Path) -> tuple[int, float | None, int, float]:
    """(frame count, duration in seconds or None, frames the header declares or 0, where the
    header says the video ends in seconds or 0), for planning."""
    from ..io.video import VideoReader

    try:
        r = VideoReader(path)
    except BackdropError:
        return 0, 0.0, 0, 0.0  # unreadable: the task reports why
    try:
        seconds = None
        if r.stream.duration:
            seconds = float(r.stream.duration * r.time_base)
        elif r.container.duration:
            seconds = r.container.duration / 1_000_000
        # what the reader's own truncation rule uses
        return r.frame_count, seconds, int(r.declared_frames or 0), r.declared_end
    finally:
        r.close()
