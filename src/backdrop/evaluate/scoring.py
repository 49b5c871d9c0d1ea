"""What image and sequence evaluation share: the per-image metrics, their means, the pipeline, progress.

Both kinds of run score every picture with the same metrics (:func:`image_metrics`) and average
them the same way, build the same matte-only pipeline when none is given, and show the same
progress bar; written once here so the two cannot drift apart.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict
from typing import Any

import numpy as np

from ..metrics import boundary_f, conn, grad, mad, mse, sad_unknown

IMAGE_METRICS = ("iou", "boundary_f", "mad", "mse", "grad", "conn", "sad_unknown")


def finite_mean(items: list[dict], key: str) -> float:
    vals = [it[key] for it in items if it.get(key) is not None and math.isfinite(it[key])]
    return float(np.mean(vals)) if vals else math.nan


def image_metrics(pred: np.ndarray, gt: np.ndarray, *, band: float = 3) -> dict[str, float]:
    """Every per-image metric of a prediction against its truth (see :mod:`backdrop.metrics`)."""
    return {"boundary_f": boundary_f(pred, gt, band=band), "mad": mad(pred, gt), "mse": mse(pred, gt),
            "grad": grad(pred, gt), "conn": conn(pred, gt), "sad_unknown": sad_unknown(pred, gt)}


def make_pipeline(pipeline, options):
    if pipeline is not None:
        return pipeline, False
    from ..engine import Pipeline

    return Pipeline(background="matte", options=options), True


def pipeline_config(pipe) -> dict[str, Any]:
    opts = getattr(pipe, "options", None)
    try:
        return asdict(opts) if opts is not None else {}
    except TypeError:
        return {}


def progress_bar(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="img", disable=quiet or not sys.stderr.isatty(),
                dynamic_ncols=True, leave=False)
