"""Training losses, each a small function of (logits, targets) with a weight in the config.

Shapes: ``logits`` and targets are float tensors (N, 1, H, W) (targets in [0, 1], soft allowed);
``parsing`` logits are (N, 3, H, W). Every function returns a scalar tensor.

Why several: BCE alone is dominated by the easy interior of the person and the background, so
edges stay soft and thin parts (fingers, hair) vanish. Dice/Lovasz optimise the overlap the
metrics measure; the boundary band loss and OHEM spend the gradient where the errors are; the
consistency loss makes predictions stable under camera-like changes (less flicker in video);
distillation transfers a stronger teacher's soft knowledge where labels are hard or missing.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

EPS = 1e-6


def bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per image, averaged: scale-free, so small people count as much as big ones."""
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (p * t).sum(1)
    return (1 - (2 * inter + 1) / (p.sum(1) + t.sum(1) + 1)).mean()


def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return bce(logits, target) + dice_loss(logits, target)


def _lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    gts = gt_sorted.sum()
    inter = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jac = 1.0 - inter / union
    if gt_sorted.numel() > 1:
        jac[1:] = jac[1:] - jac[:-1]
    return jac


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovasz hinge (Berman et al. 2018): a convex surrogate of 1 - IoU, per image, averaged.

    Targets are binarised at 0.5 (the surrogate is defined for hard labels).
    """
    losses = []
    for lg, tg in zip(logits.flatten(1), target.flatten(1)):
        labels = (tg > 0.5).float()
        signs = 2 * labels - 1
        errors = 1 - lg * signs
        errors_sorted, perm = torch.sort(errors, descending=True)
        grad = _lovasz_grad(labels[perm])
        losses.append(torch.dot(F.relu(errors_sorted), grad))
    return torch.stack(losses).mean()


def boundary_band(target: torch.Tensor, width: int = 5) -> torch.Tensor:
    """The band around the label's edge: dilation minus erosion with a (2w+1)^2 square.

    Max-pooling is dilation, and erosion is dilation of the complement, so this runs on any device.
    A square is separable: a row pass then a column pass costs 2k instead of k^2 per pixel.
    """
    w = int(width)
    k = 2 * w + 1
    hard = (target > 0.5).float()

    def dilate(x):
        x = F.max_pool2d(x, (1, k), stride=1, padding=(0, w))
        return F.max_pool2d(x, (k, 1), stride=1, padding=(w, 0))

    return (dilate(hard) - (1 - dilate(1 - hard))).clamp(0, 1)


def boundary_loss(logits: torch.Tensor, target: torch.Tensor, width: int = 5) -> torch.Tensor:
    """BCE averaged over the boundary band only (zero when the label has no edge)."""
    band = boundary_band(target, width)
    per_px = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (per_px * band).sum() / band.sum().clamp_min(1.0)


def ohem_bce(logits: torch.Tensor, target: torch.Tensor, keep: float = 0.25) -> torch.Tensor:
    """Online hard example mining: BCE over the ``keep`` fraction of hardest pixels."""
    per_px = F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten()
    k = max(1, int(per_px.numel() * float(keep)))
    return per_px.topk(k).values.mean()


def bernoulli_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Mean KL(Bern(p) || Bern(q)) per pixel, numerically safe."""
    p = p.clamp(EPS, 1 - EPS)
    q = q.clamp(EPS, 1 - EPS)
    return (p * (p / q).log() + (1 - p) * ((1 - p) / (1 - q)).log()).mean()


def consistency_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Symmetric KL between predictions on an image and its photometric augmentation.

    Each side is pulled towards the other's (detached) prediction, so neither view is treated as
    ground truth and the loss cannot be lowered by collapsing both to a constant faster than the
    supervised losses push back.
    """
    pa, pb = torch.sigmoid(logits_a), torch.sigmoid(logits_b)
    return 0.5 * (bernoulli_kl(pa.detach(), pb) + bernoulli_kl(pb.detach(), pa))


def distillation(logits: torch.Tensor, teacher_prob: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher || student) on per-pixel Bernoulli outputs, with optional temperature.

    Zero when the student matches the teacher; the teacher's soft edges carry more than a
    thresholded label would. Temperature softens both (teacher via its logit).
    """
    t = float(temperature)
    if t != 1.0:
        tl = torch.logit(teacher_prob.clamp(EPS, 1 - EPS)) / t
        teacher_prob = torch.sigmoid(tl)
        logits = logits / t
    return bernoulli_kl(teacher_prob, torch.sigmoid(logits)) * (t * t)


def parsing_targets(target: torch.Tensor, width: int = 5) -> torch.Tensor:
    """(N, H, W) class map for the parsing head: 0 background, 1 person, 2 edge band."""
    cls = (target[:, 0] > 0.5).long()
    cls[boundary_band(target, width)[:, 0] > 0] = 2
    return cls


def parsing_loss(parsing_logits: torch.Tensor, target: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Cross-entropy of the 3-class parsing head (first training stage)."""
    return F.cross_entropy(parsing_logits, parsing_targets(target, width))


@dataclass
class LossWeights:
    """Weights of each term (0 turns a term off). Set under ``[loss]`` in the config."""

    bce: float = 1.0
    dice: float = 1.0
    lovasz: float = 0.0
    boundary: float = 1.0
    boundary_width: int = 5
    ohem: float = 0.5
    ohem_keep: float = 0.25
    consistency: float = 0.0
    distill: float = 0.0
    distill_temperature: float = 1.0
    parsing: float = 0.5

    @classmethod
    def from_dict(cls, d: dict) -> "LossWeights":
        from . import TrainError

        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise TrainError(f"unknown loss setting(s): {', '.join(sorted(bad))}")
        return cls(**d)


def total_loss(out: dict, batch: dict, w: LossWeights, *, parsing_stage: bool,
               out2: dict | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the enabled terms and each term's value (for the log)."""
    logits, target = out["matte"], batch["alpha"]
    terms: dict[str, torch.Tensor] = {}
    if w.bce:
        terms["bce"] = w.bce * bce(logits, target)
    if w.dice:
        terms["dice"] = w.dice * dice_loss(logits, target)
    if w.lovasz:
        terms["lovasz"] = w.lovasz * lovasz_hinge(logits, target)
    if w.boundary:
        terms["boundary"] = w.boundary * boundary_loss(logits, target, w.boundary_width)
    if w.ohem:
        terms["ohem"] = w.ohem * ohem_bce(logits, target, w.ohem_keep)
    if w.consistency and out2 is not None:
        terms["consistency"] = w.consistency * consistency_kl(logits, out2["matte"])
    if w.distill and "teacher" in batch:
        terms["distill"] = w.distill * distillation(logits, batch["teacher"], w.distill_temperature)
    if parsing_stage and w.parsing and out.get("parsing") is not None:
        terms["parsing"] = w.parsing * parsing_loss(out["parsing"], target, w.boundary_width)
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}
