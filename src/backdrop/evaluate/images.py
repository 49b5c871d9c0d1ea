"""Evaluating a set of independent photos against their ground truth (``backdrop eval IMAGES TRUTH``).

Every photo is its own stream: the pipeline is reset before each, so no temporal state carries
over, and the set gets the mean of every image metric plus the dataset-level IoU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..io.image import read_image
from ..metrics import IoUAccumulator
from .files import match_pairs
from .report import EvalReport
from .scoring import IMAGE_METRICS, finite_mean, image_metrics, make_pipeline, pipeline_config, progress_bar
from .truth import fit_truth, read_truth
from .worst import WorstKeeper


def evaluate_images(images: str | Path, truth: str | Path, *, pipeline=None, options=None,
                    worst: int = 0, out_dir: str | Path | None = None, limit: int | None = None,
                    band: float = 3, quiet: bool = True) -> EvalReport:
    """Score a pipeline on a set of independent photos with ground truth (see module docstring)."""
    pairs, lone_images, lone_truth = match_pairs(Path(images), Path(truth))
    if limit:
        pairs = pairs[:limit]
    pipe, owned = make_pipeline(pipeline, options)
    acc = IoUAccumulator()
    keeper = WorstKeeper(worst)
    items: list[dict[str, Any]] = []
    resized = soft = 0
    try:
        with progress_bar(len(pairs), Path(images).name, quiet) as bar:
            for name, img_path, gt_path in pairs:
                image = read_image(img_path)
                gt, gt_soft = read_truth(gt_path)
                if gt.shape != image.shape[:2]:
                    resized += 1
                    gt = fit_truth(gt, image.shape, f"ground truth {gt_path.name}")
                soft += gt_soft
                pipe.reset()  # photos are independent: no state carried between them
                pred = pipe.matte(image)
                item = {"name": name, "iou": acc.update(pred, gt), **image_metrics(pred, gt, band=band),
                        "soft_truth": gt_soft}
                items.append(item)
                keeper.offer(item["iou"], name, image, gt, pred,
                             f"{name}: IoU {item['iou']:.3f}  boundary F {item['boundary_f']:.3f}  "
                             f"MAD {item['mad']:.1f}", ("image", "ground truth", "prediction",
                                                        "error: red extra, blue missed"))
                bar.update(1)
    finally:
        if owned:
            pipe.close()
    summary = {"count": len(items), "dataset_iou": acc.dataset_iou,
               **{k: finite_mean(items, k) for k in IMAGE_METRICS},
               "soft_truth": soft > len(items) / 2, "truth_resized": resized,
               "unmatched_images": len(lone_images), "unmatched_truth": len(lone_truth)}
    notes = []
    if lone_images:
        notes.append(f"{len(lone_images)} image(s) without ground truth skipped (e.g. {lone_images[0]})")
    if resized:
        notes.append(f"{resized} ground truth file(s) resized to their image (same aspect ratio)")
    report = EvalReport("images", str(images), str(truth), summary, items, pipeline_config(pipe), notes=notes)
    if worst:
        report.worst = keeper.write(Path(out_dir or "eval-worst"))
    return report
