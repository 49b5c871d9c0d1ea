"""Evaluating consecutive frames (a video or a folder of frames), with per-frame truth or without.

Frames go through ``Pipeline.stream`` in order, so temporal stages run as in ``backdrop video``;
with truth each frame gets the image metrics and the clip dtSSD, and every clip gets the flicker
score. Truth comes from a folder (matched by stem, else in order) or a video of masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.paths import missing_input
from ..io.image import read_image
from ..io.video import VideoReader
from ..metrics import DtSSDAccumulator, FlickerAccumulator, IoUAccumulator
from .files import is_video, list_images
from .report import EvalReport
from .scoring import IMAGE_METRICS, finite_mean, image_metrics, make_pipeline, pipeline_config, progress_bar
from .truth import fit_truth, is_soft, read_truth
from .worst import WorstKeeper


@dataclass
class _Frame:
    name: str
    image: np.ndarray
    truth: np.ndarray | None = None
    truth_soft: bool = False


FrameLoaders = Iterator[tuple[str, Callable[[], np.ndarray]]]


def _frame_source(source: Path, limit: int | None) -> tuple[FrameLoaders, list[str] | None]:
    """(name, loader) per frame in order; plus the frame names when known in advance (folder)."""
    if source.is_dir():
        files = list(list_images(source).items())
        if not files:
            raise InputError(f"no frames (.jpg/.png...) in folder {source}")
        files = files[:limit] if limit else files
        return ((s, (lambda p=p: read_image(p))) for s, p in files), [s for s, _ in files]
    if not source.exists():
        raise missing_input(source)
    reader = VideoReader(source)

    def gen():
        try:
            for f in reader:
                if limit and f.index >= limit:
                    break
                yield f"{f.index:05d}", (lambda img=f.image: img)
        finally:
            reader.close()

    return gen(), None


def _truth_source(truth: Path, names: list[str] | None) -> Callable[[str, int], tuple[np.ndarray, bool]]:
    """A function (frame name, frame index) -> (truth matte, soft) for a folder or a video."""
    if truth.is_dir():
        gts = list_images(truth)
        if not gts:
            raise InputError(f"no ground-truth masks in folder {truth}")
        by_stem = names is not None and all(n in gts for n in names)
        ordered = list(gts.values())
        if names is not None and not by_stem and len(names) > len(ordered):
            raise InputError(f"{len(names)} frames but only {len(ordered)} ground-truth masks in {truth} "
                             "(and their names do not match the frames)")

        def from_folder(name: str, index: int):
            if by_stem:
                return read_truth(gts[name])
            if index >= len(ordered):
                raise InputError(f"more frames than ground-truth masks ({len(ordered)}) in {truth}")
            return read_truth(ordered[index])

        return from_folder
    if not truth.exists():
        raise InputError(f"ground truth not found: {truth}")
    if not is_video(truth):
        raise InputError(f"ground truth for a video must be a folder of masks or a video: {truth}")
    frames = iter(VideoReader(truth))

    def from_video(name: str, index: int):
        try:
            f = next(frames)
        except StopIteration:
            raise InputError(f"the ground-truth video {truth.name} has fewer frames than the input") from None
        a = f.image.astype(np.float32).mean(axis=2) / 255.0
        return a, is_soft(a)

    return from_video


def evaluate_sequence(source: str | Path, truth: str | Path | None = None, *, pipeline=None, options=None,
                      worst: int = 0, out_dir: str | Path | None = None, limit: int | None = None,
                      band: float = 3, motion_threshold: float = 10.0, quiet: bool = True) -> EvalReport:
    """Score a pipeline on consecutive frames (a video or a folder of frames).

    With per-frame truth: image metrics per frame, their means, dataset IoU, dtSSD and flicker.
    Without: the flicker score only (and ``worst`` pictures of the frames that flickered most:
    frame | previous matte | matte | change between them).
    """
    source = Path(source)
    truth_path = Path(truth) if truth is not None else None
    frames, names = _frame_source(source, limit)
    truth_of = _truth_source(truth_path, names) if truth_path is not None else None
    pipe, owned = make_pipeline(pipeline, options)

    def items() -> Iterator[_Frame]:
        size = None
        for index, (name, load) in enumerate(frames):
            image = load()
            if size is None:
                size = image.shape
            elif image.shape != size:
                raise InputError(f"frame {name} is {image.shape[1]}x{image.shape[0]}, not "
                                 f"{size[1]}x{size[0]} like the first: not one sequence")
            item = _Frame(name, image)
            if truth_of is not None:
                gt, item.truth_soft = truth_of(name, index)
                item.truth = fit_truth(gt, image.shape, f"ground truth of frame {name}")
            yield item

    acc = IoUAccumulator()
    dts = DtSSDAccumulator()
    flick = FlickerAccumulator(motion_threshold=motion_threshold)
    keeper = WorstKeeper(worst)
    rows: list[dict[str, Any]] = []
    prev_matte = None
    try:
        pipe.reset()
        with progress_bar(len(names) if names else None, source.name, quiet) as bar:
            for item, pred, _ in pipe.stream(items(), image_of=lambda it: it.image):
                row: dict[str, Any] = {"name": item.name, "flicker": flick.update(item.image, pred)}
                if item.truth is not None:
                    gt = item.truth
                    row.update(iou=acc.update(pred, gt), **image_metrics(pred, gt, band=band),
                               dtssd=dts.update(pred, gt), soft_truth=item.truth_soft)
                    keeper.offer(row["iou"], item.name, item.image, gt, pred,
                                 f"frame {item.name}: IoU {row['iou']:.3f}  boundary F {row['boundary_f']:.3f}",
                                 ("frame", "ground truth", "prediction", "error: red extra, blue missed"))
                elif prev_matte is not None and row["flicker"] is not None:
                    keeper.offer(-row["flicker"], item.name, item.image, prev_matte, pred,
                                 f"frame {item.name}: flicker {row['flicker']:.2f} (x1e3)",
                                 ("frame", "previous matte", "matte", "change: red up, blue down"))
                prev_matte = pred
                rows.append(row)
                bar.update(1)
    finally:
        if owned:
            pipe.close()
    if not rows:
        raise InputError(f"no frames in {source}")
    summary: dict[str, Any] = {"count": len(rows), "flicker": flick.value, "static_fraction": flick.static_fraction}
    if truth_path is not None:
        summary.update({"dataset_iou": acc.dataset_iou, **{k: finite_mean(rows, k) for k in IMAGE_METRICS},
                        "dtssd": dts.value, "soft_truth": sum(r["soft_truth"] for r in rows) > len(rows) / 2})
    mode = "sequence" if truth_path is not None else "video"
    report = EvalReport(mode, str(source), str(truth_path) if truth_path else None, summary, rows,
                        pipeline_config(pipe))
    if len(rows) < 2:
        report.notes.append("fewer than two frames: no temporal metric")
    if worst:
        report.worst = keeper.write(Path(out_dir or "eval-worst"))
    return report
