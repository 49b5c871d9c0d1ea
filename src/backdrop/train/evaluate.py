"""Validation and evaluation: labelled splits loaded for scoring, IoU / boundary F, ``eval.json``.

Why its own module: measuring a model is separate from training one. The per-epoch validation
of the loop (:meth:`.loop.Trainer.validate`), scene adaptation (:mod:`.adapt`) and
``backdrop train info --evaluate`` and the end of a run (:func:`report_eval`) all score with the same
functions, on splits drawn the same way (:func:`.data.select`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import write_bytes
from . import TrainError
from .config import TrainConfig
from .data import find_pairs, load_pair, select


@dataclass
class Labelled:
    """A loaded labelled image for validation/evaluation: full-size image and truth."""

    name: str
    image: np.ndarray
    alpha: np.ndarray


def load_split(folders: list[str], part: str, cfg: TrainConfig, *, max_side: int | None = None,
               limit: int = 0) -> list[Labelled]:
    out: list[Labelled] = []
    d = cfg.data
    for folder in folders:
        pairs = select(find_pairs(folder), part, d.eval_fraction, d.val_fraction, d.split_salt)
        for p in pairs:
            img, a = load_pair(p, max_side=max_side)
            out.append(Labelled(f"{Path(folder).name}/{p.name}", img, a))
            if limit and len(out) >= limit:
                return out
    return out


def score(segmenter, items: list[Labelled]) -> dict:
    """Mean IoU and boundary F (``backdrop eval``'s metrics) of a segmenter on labelled images,
    at each image's full size, per image then averaged."""
    from ..metrics.segmentation import boundary_f, iou

    ious, bfs = [], []
    for it in items:
        if hasattr(segmenter, "reset"):
            segmenter.reset()
        m = segmenter(it.image)
        ious.append(iou(m, it.alpha))
        bfs.append(boundary_f(m, it.alpha))
    return {"iou": float(np.mean(ious)) if ious else float("nan"),
            "boundary_f": float(np.mean(bfs)) if bfs else float("nan"), "images": len(items),
            "per_image_iou": [round(float(v), 4) for v in ious]}


def report_eval(cfg: TrainConfig, checkpoint: str | Path, out: str | Path | None = None,
                teacher: str | None = None, folders: list[str] | None = None) -> dict:
    """Score a checkpoint and the teacher on the ``eval`` split of the training folders (never
    trained on) and write ``eval.json``: the number docs/training.md reports. With ``folders``,
    score every pair of those folders instead (other, wholly held-out sets)."""
    from .predict import TorchSegmenter, load_student
    from .teacher import load_teacher

    model, spec, _ = load_student(checkpoint)
    items = load_split(folders, "all", cfg) if folders else load_split(cfg.data.train, "eval", cfg)
    if not items:
        raise TrainError("the eval split is empty: raise data.eval_fraction")
    result = {"checkpoint": str(checkpoint), "eval_images": len(items),
              "split": ({"folders": folders} if folders else
                        {"eval_fraction": cfg.data.eval_fraction, "salt": cfg.data.split_salt}),
              "student": score(TorchSegmenter(model, spec), items)}
    teacher = cfg.run.eval_teacher if teacher is None else teacher
    if teacher:
        result["teacher"] = {"model": teacher, **score(load_teacher(teacher), items)}
    if out:
        write_bytes(Path(out), json.dumps(result, indent=2))
    return result
