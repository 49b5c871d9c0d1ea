"""The evaluation engine behind ``backdrop eval``: run a pipeline on labelled data and score it.

Three kinds of input:

- **an image set**: a folder of photos and a folder of ground-truth masks or alpha mattes, matched
  by file stem (``12.jpg`` <-> ``12.png``; any format Pillow reads). Every photo is an independent
  stream (the pipeline is reset before each), and gets IoU, boundary F, MAD, MSE, Grad, Conn and
  SAD in the unknown band; the set gets their means plus the dataset-level IoU.
- **a sequence**: a video file, or a folder of frames in name order, with per-frame truth (a
  folder of masks matched by stem, or in order when the names differ or the input is a video;
  or a video of masks, in order). Frames go through ``Pipeline.stream`` in order, so
  temporal stages run as in ``backdrop video``; each frame gets the image metrics and the clip gets
  dtSSD and the flicker score.
- **a sequence without truth**: only the flicker score (see :mod:`backdrop.metrics.temporal`).

Truth smaller or larger than its image, with the same aspect ratio (many published masks were
saved at a reduced size), is resized to the image with bilinear filtering; a different aspect
ratio is an error, since it means the pair does not belong together. Ground truth is read as the
alpha channel when the file has a real one (cut-outs), else as luminance; 16-bit files are scaled.

Everything returns an :class:`EvalReport`; :func:`format_report` renders the terminal table and
:meth:`EvalReport.to_dict` the JSON. ``worst`` writes side-by-side pictures of the worst items.

The package, one concern per module: :mod:`.truth` (reading masks and mattes), :mod:`.files`
(matching and telling frames from photos), :mod:`.images` and :mod:`.sequence` (the two kinds of
run, sharing :mod:`.scoring`), :mod:`.worst` (the pictures) and :mod:`.report`. :func:`evaluate`,
here, chooses between the two runs; everything callers use is importable from
``backdrop.evaluate`` itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..io.image import IMAGE_SUFFIXES
from ..io.paths import missing_input
from .files import is_video, list_images, looks_like_frames, match_pairs, natural_key
from .composite import (COMPOSITE_METRICS, NEW_BACKGROUNDS, CompositeCase, composite_cases, evaluate_composite,
                        evaluate_composite_cases, format_composite_report, make_case, score_case)
from .images import evaluate_images
from .report import HIGHER_IS_BETTER, METRIC_LABELS, EvalReport, format_report, json_safe
from .scoring import IMAGE_METRICS, image_metrics
from .sequence import evaluate_sequence
from .sources import iter_people, load_backgrounds, load_people, true_foreground
from .synthetic import (GreenScreenItem, GreenScreenSet, SlidingClip, green_screen_image, green_screen_set,
                        slide_person, sliding_clip, write_green_screen_set, write_sliding_clip)
from .truth import SOFT_FRACTION, fit_truth, is_soft, read_truth
from .worst import WORST_PANEL_HEIGHT, WorstKeeper, error_map, side_by_side

__all__ = ["EvalReport", "HIGHER_IS_BETTER", "IMAGE_METRICS", "METRIC_LABELS", "SOFT_FRACTION",
           "WORST_PANEL_HEIGHT", "WorstKeeper", "error_map", "evaluate", "evaluate_images", "evaluate_sequence",
           "fit_truth", "format_report", "image_metrics", "is_soft", "is_video", "json_safe", "list_images",
           "looks_like_frames", "match_pairs", "natural_key", "read_truth", "side_by_side",
           "COMPOSITE_METRICS", "NEW_BACKGROUNDS", "CompositeCase", "composite_cases", "evaluate_composite",
           "evaluate_composite_cases", "format_composite_report", "make_case", "score_case", "iter_people",
           "load_backgrounds", "load_people", "true_foreground", "GreenScreenItem", "GreenScreenSet", "SlidingClip",
           "green_screen_image", "green_screen_set", "slide_person", "sliding_clip", "write_green_screen_set",
           "write_sliding_clip"]


def evaluate(source: str | Path, truth: str | Path | None = None, *, mode: str = "auto", **kwargs: Any) -> EvalReport:
    """Evaluate ``source`` against ``truth``, choosing images vs. sequence.

    ``mode``: ``"images"`` (independent photos), ``"sequence"`` (consecutive frames) or ``"auto"``:
    a video file, a folder without truth, or a folder of consecutively numbered frames of one size
    is a sequence; anything else is an image set.
    """
    source = Path(source)
    if not source.exists():
        raise missing_input(source)
    if truth is not None and not Path(truth).exists():
        raise missing_input(truth, "ground truth")
    if mode not in ("auto", "images", "sequence"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "auto":
        if is_video(source) or truth is None:
            mode = "sequence"
        elif source.is_dir() and looks_like_frames(source):
            mode = "sequence"
        else:
            mode = "images"
    if mode == "images":
        if truth is None:
            raise InputError("an image set needs ground truth: backdrop eval IMAGES TRUTH")
        if is_video(source):
            raise InputError(f"{source.name} is a video: it cannot be scored as an image set")
        return evaluate_images(source, truth, **{k: v for k, v in kwargs.items() if k != "motion_threshold"})
    if source.is_file() and not is_video(source):
        if source.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(f"an image needs its ground truth: backdrop eval {source.name} TRUTH")
        raise InputError(f"not a video or a folder of frames: {source}")
    return evaluate_sequence(source, truth, **kwargs)
