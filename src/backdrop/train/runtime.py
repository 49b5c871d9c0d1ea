"""Per-step mechanics of a training run: device choice, seeding, batching, learning-rate schedule.

Why its own module: these are small, stateless pieces the loop (:mod:`.loop`) calls every step
or once per run, kept apart from the loop's control flow so each can be read and tested alone.
:func:`to_batch` normalises exactly as the exported ``backdrop.spec`` will at inference.
"""

from __future__ import annotations

import math

import numpy as np

from . import TrainError, require_torch


def pick_device(name: str):
    torch = require_torch()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainError("run.device is cuda but no CUDA GPU is available")
    if name not in ("cpu", "cuda"):
        raise TrainError(f"run.device must be auto, cpu or cuda, not {name!r}")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    import random

    torch = require_torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_batch(samples: list[dict], device, crop: int = 0, rng: np.random.Generator | None = None) -> dict:
    """Stack samples into NCHW float tensors, normalised as the exported spec will normalise."""
    torch = require_torch()
    from .model import INPUT_MEAN, INPUT_STD

    def img(key):
        x = torch.from_numpy(np.stack([s[key] for s in samples])).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(INPUT_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(INPUT_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def mat(key):
        return torch.from_numpy(np.stack([s[key] for s in samples]))[:, None].float()

    batch = {"image": img("image"), "alpha": mat("alpha")}
    if "image2" in samples[0]:
        batch["image2"] = img("image2")
    if "teacher" in samples[0]:
        batch["teacher"] = mat("teacher")
    if crop:
        h, w = batch["image"].shape[-2:]
        if crop < min(h, w):
            rng = rng or np.random.default_rng()
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            batch = {k: v[..., y:y + crop, x:x + crop] for k, v in batch.items()}
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def collate(samples: list[dict]) -> list[dict]:
    return samples


def lr_at(step: int, total: int, base: float, warmup: int, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 1% of ``base`` at ``total`` steps.

    ``time_fraction`` (elapsed / ``run.time_limit_min``) can move the decay ahead of the step
    count: a run with a wall-clock budget on a slow or shared machine still ends annealed
    instead of being cut off at a high learning rate. Without a time limit it is 0 and the
    schedule depends on the step alone (reproducible).
    """
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, max((step - warmup) / max(1, total - warmup), time_fraction))
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))
