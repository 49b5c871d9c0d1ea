"""``backdrop upscale IN OUT``: a video or an image, super-resolved x2, written atomically.

Video goes through the same decode -> per-frame function -> encode loop as ``backdrop video``
(:func:`backdrop.io.transcode.transcode`): timestamps, frame count and audio are kept (audio
copied without re-encoding where the container allows), the output appears only when complete,
and the frames stay in the decoder's I420 planes (:class:`~backdrop.planar.Planar`) from decode
to encode, so the upscale never converts colour (:meth:`Upscaler.planar`). The size is checked
before anything is written: an input whose x2 would pass 8K is one line, not a half-made file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..io.atomic import check_output_path
from ..io.formats import VIDEO_INPUT_SUFFIXES, check_video_output_suffix
from ..io.image import IMAGE_SUFFIXES, read_image, write_image
from ..io.transcode import EncodeSettings, queue_depth, transcode
from ..io.video import VideoReader, validate_encoder_options
from .frames import Upscaler, check_scale, check_size


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    try:
        disable = quiet or sys.stderr is None or not sys.stderr.isatty()
    except (OSError, ValueError):
        disable = True
    return tqdm(total=total or None, desc=desc, unit="frame", disable=disable, dynamic_ncols=True, leave=False)


def upscale_video(src: str | Path, dst: str | Path, *, scale: int = 2, crf: int = 20, preset: str = "veryfast",
                  keep_audio: bool = True, quiet: bool = False, upscaler: Upscaler | None = None) -> dict[str, Any]:
    """Write ``dst``: every frame of ``src`` at ``scale`` times the size (timing and audio kept)."""
    src, dst = Path(src), Path(dst)
    check_scale(scale)
    validate_encoder_options(crf, preset)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    dst = check_output_path(dst, src)
    check_video_output_suffix(dst.suffix, dst.name)
    reader = VideoReader(src, planar=True)
    try:
        if reader.coded_width and reader.coded_height:
            check_size(reader.coded_width, reader.coded_height, scale)
        up = upscaler or Upscaler(scale)
        settings = EncodeSettings(rate=reader.rate, time_base=reader.time_base, pixel_format="rgb", crf=crf,
                                  preset=preset, audio_from=src if keep_audio and reader.has_audio else None)
        w, h = reader.size

        def stream(frames):
            # deferred: with overlap the upscale runs on the writer's thread, beside the decoder
            return ((f.pts, (lambda image=f.image: up(image))) for f in frames)

        t0 = time.perf_counter()
        with _progress(reader.frame_count, src.name, quiet) as bar:
            stats = transcode(reader, dst, settings, stream, overlap=True, depth=queue_depth(w * 2, h * 2),
                              on_frame=lambda _: bar.update(1),
                              empty=InputError(f"video has no decodable frames: {src.name}"))
    finally:
        reader.close()
    seconds = time.perf_counter() - t0
    return {"frames": stats.frames, "seconds": seconds, "fps": stats.frames / seconds if seconds else 0.0,
            "width": stats.width, "height": stats.height}


def upscale_image(src: str | Path, dst: str | Path, *, scale: int = 2,
                  upscaler: Upscaler | None = None) -> dict[str, Any]:
    """Write ``dst``: the image ``src`` at ``scale`` times the size."""
    src, dst = Path(src), Path(dst)
    check_scale(scale)
    if not src.exists():
        raise InputError(f"input not found: {src}")
    dst = check_output_path(dst, src)
    if dst.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(f"unsupported image output {dst.name}: use .png, .jpg or .webp")
    frame = read_image(src)
    check_size(frame.shape[1], frame.shape[0], scale)
    t0 = time.perf_counter()
    out = (upscaler or Upscaler(scale)).rgb(frame)
    write_image(dst, out)
    return {"images": 1, "seconds": time.perf_counter() - t0, "width": out.shape[1], "height": out.shape[0]}


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_INPUT_SUFFIXES


__all__ = ["is_video", "upscale_image", "upscale_video"]
