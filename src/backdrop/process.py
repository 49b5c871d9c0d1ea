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

from .errors import InputError, OutputError
from .io.atomic import check_output_path
from .io.image import IMAGE_SUFFIXES, read_image, write_image
from .io.transcode import EncodeSettings, transcode
from .io.video import VIDEO_SUFFIXES, VideoReader, validate_encoder_options
from .pipeline import Pipeline

log = logging.getLogger(__name__)


def _progress(total: int | None, desc: str, quiet: bool):
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total or None, desc=desc, unit="frame", disable=disable, dynamic_ncols=True,
                smoothing=0.1, leave=False)


def process_video(src: str | Path, dst: str | Path, *, pipeline: Pipeline | None = None,
                  background: Any = None, crf: int = 20, preset: str = "veryfast",
                  quiet: bool = False, keep_audio: bool = True, overlap: bool = True,
                  **options: Any) -> dict[str, Any]:
    """Replace the background of every frame of ``src`` and write ``dst``.

    With ``overlap`` decoding and encoding run on their own threads (bounded queues), so they
    overlap with the pipeline on a multi-core CPU; the output is identical either way.

    Keeps the frame count, the timestamps (variable frame rate too) and the audio (copied without
    re-encoding when the container allows). Rotated phone videos come out upright. Returns
    statistics: frames, seconds, frames/s, inferences, skipped fraction.
    """
    src, dst = Path(src), Path(dst)
    validate_encoder_options(crf, preset)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    dst = check_output_path(dst, src)
    if dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise OutputError(f"unsupported video output {dst.name}: use .mp4, .mov, .mkv or .webm")
    reader = VideoReader(src)
    try:
        pipe = pipeline or Pipeline(background=background, quiet=quiet, **options)
    except BaseException:
        reader.close()
        raise
    t0 = time.perf_counter()
    try:
        pipe.start(fps=float(reader.rate), frames=reader.frame_count)
        settings = EncodeSettings(rate=reader.rate, time_base=reader.time_base, kind=pipe.output_kind, crf=crf,
                                  preset=preset, audio_from=src if keep_audio and reader.has_audio else None)

        def composite(frames):
            return ((item.pts, out) for item, _, out in pipe.stream(frames, image_of=lambda f: f.image))

        with _progress(reader.frame_count, src.name, quiet) as bar:
            frames = transcode(reader, dst, settings, composite, overlap=overlap, on_frame=lambda _: bar.update(1),
                               timer=pipe.timer,
                               empty=InputError(f"video has no decodable frames: {src.name}")).frames
    finally:
        reader.close()
        if pipeline is None:
            pipe.close()
    seconds = time.perf_counter() - t0
    if reader.truncated:
        # the output holds every frame that could be decoded; say so rather than pass a cut
        # or damaged input off as complete
        declared = reader.declared_frames
        of = f" of {declared} declared" if declared else ""
        log.warning("input %s looks truncated or damaged: %d frames decoded%s, %d undecodable packets",
                    src.name, frames, of, reader.bad_packets)
    return {**pipe.stats(), "frames": frames, "seconds": seconds,
            "fps": frames / seconds if seconds else 0.0, "rotation": reader.rotation,
            "bad_packets": reader.bad_packets, "truncated": reader.truncated}


def image_output_path(src: Path, out_dir: Path, kind: str) -> Path:
    suffix = src.suffix.lower()
    if kind == "rgba" and suffix in (".jpg", ".jpeg", ".bmp"):
        suffix = ".png"
    return out_dir / (src.stem + suffix)


def process_image(src: str | Path, dst: str | Path, *, pipeline: Pipeline | None = None,
                  background: Any = None, quiet: bool = False, **options: Any) -> dict[str, Any]:
    """Replace the background of one image (same size out), or of every image in a folder.

    For a folder, ``dst`` is a folder (created if missing) and each output keeps its name (a
    transparent result from a JPEG is written as PNG).
    """
    src, dst = Path(src), Path(dst)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    files = _folder_inputs(src, dst) if src.is_dir() else None  # refused before a model loads
    pipe = pipeline or Pipeline(background=background, quiet=quiet, **options)
    t0 = time.perf_counter()
    try:
        if files is not None:
            try:
                dst.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(f"cannot create output folder {dst}: {exc.strerror}") from None
            done = 0
            with _progress(len(files), src.name, quiet) as bar:
                for f in files:
                    _one_image(pipe, f, image_output_path(f, dst, pipe.output_kind))
                    done += 1
                    bar.update(1)
        else:
            check_output_path(dst, src)
            _one_image(pipe, src, dst)
            done = 1
    finally:
        if pipeline is None:
            pipe.close()
    seconds = time.perf_counter() - t0
    return {"images": done, "seconds": seconds}


def _folder_inputs(src: Path, dst: Path) -> list[Path]:
    """The images of folder ``src``, once ``dst`` is known to be usable as their output folder.

    ``out.png`` for a folder is almost certainly a slip (one image was meant, or a folder name
    was forgotten); creating a folder of that name would hide it, so it is refused unless a
    folder of that name already exists.
    """
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images (.jpg/.png/.webp...) in folder {src}")
    if dst.exists() and not dst.is_dir():
        raise OutputError(f"output for a folder of images must be a folder, and {dst} is a file")
    if not dst.is_dir() and dst.suffix.lower() in IMAGE_SUFFIXES:
        raise OutputError(f"output for a folder of images must be a folder, not an image file name: {dst}")
    if dst.resolve() == src.resolve():
        raise OutputError("output folder is the input folder; choose another one")
    return files


def _one_image(pipe: Pipeline, src: Path, dst: Path) -> None:
    frame = read_image(src)
    pipe.reset()  # photos are independent: no temporal state between them
    out = pipe(frame)
    write_image(dst, out)
