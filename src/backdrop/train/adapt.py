"""Scene adaptation: fine-tune the student on a few minutes of the user's own, unlabelled scene.

Why: a small student is weakest exactly where a user needs it — their room, their lighting,
their chair. The teacher is big enough to be right about that scene most of the time, so we:

1. take frames of the scene (a folder or a video, one in ``every``), in time order;
2. hold out the **last** ``holdout`` fraction of them (a later stretch of the video: neighbouring
   frames are near-duplicates, so a random split would leak);
3. label the rest with the teacher, dropping frames where its flip / zoom runs disagree
   (:func:`backdrop.train.teacher.label_frame`);
4. build a clean plate of the empty scene (per-pixel median of the frames where the teacher sees
   no person) and synthesise: the scene's person re-composited onto the plate at other
   positions, scales and warps, besides the real frames;
5. fine-tune the student (from a checkpoint, or from scratch) on that;
6. report the student's IoU against the teacher on the held-out frames, before and after, and
   export the adapted ONNX model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..io.atomic import write_bytes
from . import TrainError, require_torch
from .config import TrainConfig, apply_overrides
from .data import iter_frames

ADAPT_DEFAULTS = {
    "model": {"parsing_head": True},
    "data": {"samples_per_epoch": 128, "synth": 0.5, "crop": 0, "teacher": "", "max_side": 384},
    "optim": {"epochs": 6, "batch_size": 8, "lr": 0.001, "warmup_steps": 10, "parsing_epochs": 0},
    "loss": {"distill": 0.0, "parsing": 0.0, "consistency": 0.0},
    "augment": {"geometry": {"scale": [0.85, 1.15], "rotate": 8.0, "translate": 0.2}},
    "run": {"export": True, "report_eval": False},
}
"""Adaptation defaults: short, gentle (lower lr, smaller warps: the camera does not move)."""


def clean_plate(frames: list[np.ndarray], mattes: list[np.ndarray], threshold: float = 0.1) -> np.ndarray:
    """The empty scene: per-pixel median over frames where the person is absent there.

    Pixels covered by the person in every frame are inpainted from their surroundings.
    """
    stack = np.stack(frames).astype(np.float32)
    person = np.stack([cv2.dilate((m > threshold).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
                       for m in mattes])
    stack[person] = np.nan
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            plate = np.nanmedian(stack, axis=0)
    hole = np.isnan(plate).any(axis=2)
    plate = np.nan_to_num(plate, nan=0.0).clip(0, 255).astype(np.uint8)
    if hole.any():
        plate = cv2.inpaint(plate, hole.astype(np.uint8) * 255, 7, cv2.INPAINT_TELEA)
    return plate


def _resize_max(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return img
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def adapt(frames: str | Path, out: str | Path, *, checkpoint: str | Path | None = None,
          teacher: str = "selfie", every: int = 10, max_frames: int = 120, holdout: float = 0.25,
          min_agreement: float = 0.9, config: dict | None = None, overrides: list[str] | None = None,
          quiet: bool = False) -> dict:
    """Run the whole adaptation (see the module docstring); returns and writes ``adapt.json``."""
    require_torch()
    from .evaluate import Labelled, score
    from .loop import Trainer
    from .predict import TorchSegmenter, read_checkpoint
    from .teacher import label_frame, load_teacher

    out = Path(out)
    if (out / "last.pt").exists():
        raise TrainError(f"{out} already holds an adaptation run: choose another --out")
    if not 0.05 <= holdout <= 0.5:
        raise TrainError(f"--holdout must be between 0.05 and 0.5, not {holdout}")

    # the config: adaptation defaults, then the base checkpoint's model, then the user's
    d = json.loads(json.dumps(ADAPT_DEFAULTS))
    if checkpoint:
        base_model = read_checkpoint(checkpoint)["config"].get("model")
        if not isinstance(base_model, dict):
            raise TrainError(f"{Path(checkpoint).name} is not a backdrop training checkpoint (no model config)")
        d["model"].update(base_model)
    for section, values in (config or {}).items():
        if not isinstance(values, dict):
            raise TrainError(f"config section {section} must be a table")
        d.setdefault(section, {}).update(values)
    d.setdefault("run", {})["out"] = str(out)
    cfg = TrainConfig.from_dict(apply_overrides(d, overrides or []))
    max_side = cfg.data.max_side

    say = (lambda *a: None) if quiet else (lambda *a: print("backdrop:", *a, file=sys.stderr))
    teach = load_teacher(teacher, threads=1)
    items = [(name, _resize_max(img, max_side)) for name, img in iter_frames(frames, every=every, limit=max_frames)]
    if len(items) < 8:
        raise TrainError(f"only {len(items)} frames from {frames}: need at least 8 (lower --every)")
    n_hold = max(2, int(round(len(items) * holdout)))
    train_items, held_items = items[:-n_hold], items[-n_hold:]
    say(f"{len(items)} frames: {len(train_items)} to label, {len(held_items)} held out (the last ones)")

    people, mattes, dropped = [], [], 0
    for _, img in train_items:
        lab = label_frame(teach, img, min_agreement=min_agreement)
        mattes.append(lab.matte)
        if lab.keep:
            people.append((img, lab.matte))
        else:
            dropped += 1
    if not people:
        raise TrainError("the teacher disagreed with itself on every frame: lower --min-agreement")
    say(f"teacher kept {len(people)} frames, dropped {dropped} (flip/zoom disagreement)")
    plate = clean_plate([img for _, img in train_items], mattes)
    held = []
    for name, img in held_items:
        teach.reset()
        held.append(Labelled(name, img, teach(img)))

    trainer = Trainer(cfg, quiet=quiet, init_from=checkpoint, people=people, backgrounds=[plate], val=[])
    before = score(TorchSegmenter(trainer.model, trainer.spec), held)
    say(f"before: IoU vs teacher on held-out frames {before['iou']:.4f}")
    result_fit = trainer.fit()
    after = score(TorchSegmenter(trainer.model, trainer.spec), held)
    say(f"after:  IoU vs teacher on held-out frames {after['iou']:.4f}")
    from ..io.image import write_image

    write_image(out / "clean_plate.png", plate)
    result = {"frames": len(items), "labelled": len(people), "dropped": dropped, "held_out": len(held),
              "checkpoint": str(out / "final.pt"), "base_checkpoint": str(checkpoint) if checkpoint else None,
              "teacher": teacher, "steps": result_fit["steps"], "seconds": round(result_fit["seconds"], 1),
              "before": {k: v for k, v in before.items() if k != "per_image_iou"},
              "after": {k: v for k, v in after.items() if k != "per_image_iou"}}
    if cfg.run.export:
        from .export import export_checkpoint

        result["onnx"] = str(export_checkpoint(out / "final.pt", out / "model.onnx"))
    write_bytes(out / "adapt.json", json.dumps(result, indent=2))
    return result
