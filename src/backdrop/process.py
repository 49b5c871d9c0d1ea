"""File-to-file jobs: one video, one image, or a folder of images.

These wrap the Pipeline with PyAV/Pillow I/O, a progress bar (frames/s and ETA; off with
``quiet`` or when stderr is not a terminal) and atomic outputs: the result appears only when
complete, and the input is only ever opened for reading.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .errors import InputError, OptionError, OutputError
from .io.atomic import check_output_path, make_folder
from .io.formats import check_video_output_suffix
from .io.image import IMAGE_SUFFIXES, read_image, write_image
from .io.paths import is_hidden, missing_input
from .io.transcode import EncodeSettings, queue_depth, transcode
from .io.video import VideoReader, validate_encoder_options
from .engine import Pipeline
from .stages.plate import check_learnable

log = logging.getLogger(__name__)


def _progress(total: int | None, desc: str, quiet: bool):
    try:
        disable = quiet or sys.stderr is None or not sys.stderr.isatty()
    except (OSError, ValueError):  # stderr closed
        disable = True
    return tqdm(total=total or None, desc=desc, unit="frame", disable=disable, dynamic_ncols=True,
                smoothing=0.1, leave=False)


def process_video(src: str | Path, dst: str | Path, *, pipeline: Pipeline | None = None,
                  background: Any = None, crf: int = 20, preset: str = "veryfast",
                  quiet: bool = False, keep_audio: bool = True, overlap: bool = True,
                  strict: bool = False, upscale: int = 0, **options: Any) -> dict[str, Any]:
    """Replace the background of every frame of ``src`` and write ``dst``.

    With ``overlap`` decoding and encoding run on their own threads (bounded queues), so they
    overlap with the pipeline on a multi-core CPU; the output is identical either way.

    Keeps the frame count, the timestamps (variable frame rate too) and the audio (copied without
    re-encoding when the container allows). Rotated phone videos come out upright. Returns
    statistics: frames, seconds, frames/s, inferences, skipped fraction.

    An input that looks cut short or damaged gives a warning (the output holds every frame that
    could be decoded); with ``strict`` it is an :class:`InputError` and nothing is written.

    ``upscale=2`` makes every composite twice as large with the ``sr-x2`` network, the last step
    (:func:`upscale_step`; the frames stay I420 planes where they were).
    """
    src, dst = Path(src), Path(dst)
    validate_encoder_options(crf, preset)
    if not src.exists():
        raise missing_input(src)
    dst = check_output_path(dst, src)
    check_video_output_suffix(dst.suffix, dst.name)
    up = upscale_step(upscale)
    reader = VideoReader(src)
    try:
        if up is not None and reader.coded_width and reader.coded_height:
            from .superres.frames import check_size

            check_size(reader.coded_width, reader.coded_height, upscale)  # before any output exists
        pipe = pipeline or Pipeline(background=background, quiet=quiet, **options)
    except BaseException:
        reader.close()
        raise
    if up is not None and pipe.pixel_format == "gray":
        reader.close()
        if pipeline is None:
            pipe.close()
        raise OptionError("{option} makes pictures sharper; a matte output (--background matte) is not one",
                          option="upscale")
    # frames stay in the decoder's YUV planes when the output is RGB (planar.py): the fused pass
    # blends them and the encoder takes them as they are
    reader.planar = pipe.pixel_format == "rgb"
    t0 = time.perf_counter()
    try:
        check_learnable(pipe.options, reader.frame_count, src.name)
        pipe.start(fps=float(reader.rate), frames=reader.frame_count)
        settings = EncodeSettings(rate=reader.rate, time_base=reader.time_base, pixel_format=pipe.pixel_format, crf=crf,
                                  preset=preset, audio_from=src if keep_audio and reader.has_audio else None)

        def composite(frames):
            made = ((item.pts, out) for item, _, out in pipe.stream(frames, image_of=lambda f: f.image,
                                                                          mattes=False, defer=overlap))
            if up is None:
                return made
            # deferred: with overlap the upscale runs on the writer's thread, as the composite does
            return ((pts, lambda out=out: up(out() if callable(out) else out)) for pts, out in made)

        def finish(count: int) -> None:
            if strict and reader.truncated:
                raise InputError(f"input {src.name} looks truncated or damaged: {_damage(reader)} (--strict: "
                                 "nothing written)")

        with _progress(reader.frame_count, src.name, quiet) as bar:
            frames = transcode(reader, dst, settings, composite, overlap=overlap, on_frame=lambda _: bar.update(1),
                               depth=queue_depth(*(2 * v if up else v for v in reader.size)),
                               timer=pipe.timer, check=finish,
                               empty=InputError(f"video has no decodable frames: {src.name}")).frames
    finally:
        reader.close()
        if pipeline is None:
            pipe.close()
    seconds = time.perf_counter() - t0
    if reader.truncated:
        # the output holds every frame that could be decoded; say so rather than pass a cut
        # or damaged input off as complete
        log.warning("input %s looks truncated or damaged: %s", src.name, _damage(reader))
    if reader.resized_frames:
        log.warning("the picture size of %s changes part-way: %d frames were scaled (aspect kept, letterboxed) "
                    "to the first frame's %dx%d", src.name, reader.resized_frames, *reader.first_size)
    return {**pipe.stats(), "frames": frames, "seconds": seconds,
            "fps": frames / seconds if seconds else 0.0, "rotation": reader.rotation,
            "bad_packets": reader.bad_packets, "truncated": reader.truncated}


def upscale_step(factor: int):
    """``--upscale``: None for 0, else the :class:`~backdrop.superres.Upscaler` every finished
    frame goes through (RGB, RGBA or I420 planes; x2 only, one line otherwise)."""
    if not factor:
        return None
    from .superres import Upscaler
    from .superres.frames import check_scale

    return Upscaler(check_scale(factor, option="upscale"))


def _damage(reader: VideoReader) -> str:
    """``8 frames decoded of 30 declared, 0 undecodable packets`` (``of about 60 expected from
    the duration`` for containers that declare no frame count)."""
    if reader.declared_frames:
        of = f" of {reader.declared_frames} declared"
    elif reader.expected_frames:
        of = f" of about {reader.expected_frames} expected from the duration"
        if reader.last_time is not None:
            of += f" (the last at {reader.last_time:.2f} s of {reader.declared_end:.2f} s)"
    else:
        of = ""
    return f"{reader.frames_decoded} frames decoded{of}, {reader.bad_packets} undecodable packets"


def image_output_path(src: Path, out_dir: Path, pixel_format: str) -> Path:
    suffix = src.suffix.lower()
    if pixel_format == "rgba" and suffix in (".jpg", ".jpeg", ".bmp"):
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def plan_outputs(files: list[Path], out_dir: Path, pixel_format: str) -> list[Path]:
    """One output per input, never two the same (compared case-insensitively).

    A file whose output keeps its own name claims it first; one whose suffix changes (a JPEG
    going transparent) and collides gets its full name plus the new suffix (``a.jpg`` next to
    ``a.png``: ``a.png`` and ``a.jpg.png``), then ``a.jpg-2.png`` and so on.
    """
    out: list[Path | None] = [None] * len(files)
    taken: set[str] = set()
    plain = [image_output_path(f, out_dir, pixel_format) for f in files]
    order = sorted(range(len(files)), key=lambda i: plain[i].name != files[i].name)
    for i in order:
        f, first = files[i], plain[i]
        names = [first.name, f.name + first.suffix] + [f"{f.name}-{k}{first.suffix}" for k in range(2, 100000)]
        name = next(n for n in names if n.lower() not in taken)
        taken.add(name.lower())
        out[i] = out_dir / name
    return out  # type: ignore[return-value]


def process_image(src: str | Path, dst: str | Path, *, pipeline: Pipeline | None = None,
                  background: Any = None, quiet: bool = False, upscale: int = 0,
                  **options: Any) -> dict[str, Any]:
    """Replace the background of one image (same size out; twice it with ``upscale=2``), or of
    every image in a folder.

    For a folder, ``dst`` is a folder (created if missing) and each output keeps its name (a
    transparent result from a JPEG is written as PNG; a name this run already wrote is never
    overwritten: see :func:`plan_outputs`). Hidden files (``._photo.png`` from macOS) and
    our own temp files are skipped; an unreadable image is recorded in ``failed`` as
    ``(name, reason)`` and the others are still done.
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise missing_input(src)
    files = _folder_inputs(src, dst) if src.is_dir() else None  # refused before a model loads
    up = upscale_step(upscale)
    pipe = pipeline or Pipeline(background=background, quiet=quiet, **options)
    t0 = time.perf_counter()
    failed: list[tuple[str, str]] = []
    written: list[Path] = []
    try:
        check_learnable(pipe.options, 1, f"folder {src.name}" if files is not None else src.name)
        if files is not None:
            make_folder(dst)
            with _progress(len(files), src.name, quiet) as bar:
                for f, out in zip(files, plan_outputs(files, dst, pipe.pixel_format)):
                    try:
                        _one_image(pipe, f, out, up)
                    except InputError as exc:
                        failed.append((f.name, str(exc)))
                        log.debug("skipping %s: %s", f, exc)
                    else:
                        written.append(out)
                    bar.update(1)
        else:
            check_output_path(dst, src)
            _one_image(pipe, src, dst, up)
            written.append(dst)
    finally:
        if pipeline is None:
            pipe.close()
    seconds = time.perf_counter() - t0
    return {"images": len(written), "seconds": seconds, "written": written, "failed": failed}


def _folder_inputs(src: Path, dst: Path) -> list[Path]:
    """The images of folder ``src``, once ``dst`` is known to be usable as their output folder.

    Hidden files are skipped: ``._photo.png`` (macOS metadata beside a copied photo) is no
    image, and ``.photo.x1y2z3a4.part.png`` is a temp file of a run still writing or killed.

    ``out.png`` for a folder is almost certainly a slip (one image was meant, or a folder name
    was forgotten); creating a folder of that name would hide it, so it is refused unless a
    folder of that name already exists.
    """
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.name)
                   and p.is_file())
    if not files:
        raise InputError(f"no images (.jpg/.png/.webp...) in folder {src}")
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"output for a folder of images must be a folder, and {dst} is a file")
    if not dst.is_dir() and dst.suffix.lower() in IMAGE_SUFFIXES:
        raise OutputError(f"output for a folder of images must be a folder, not an image file name: {dst}")
    if dst.resolve() == src.resolve():
        raise OutputError("output folder is the input folder; choose another one")
    return files


def _one_image(pipe: Pipeline, src: Path, dst: Path, up=None) -> None:
    frame = read_image(src)
    if up is not None:
        from .superres.frames import check_size

        check_size(frame.shape[1], frame.shape[0], up.scale)  # before the matte is paid for
    pipe.reset()  # photos are independent: no temporal state between them
    out = pipe(frame)
    write_image(dst, up(out) if up is not None else out)
