"""Validation of a training config, like the command-line options are validated: one line, exit 2.

Why: a config is user input. Unchecked, ``optim.epochs = 0`` or a NaN fraction "succeeded"
with an untrained model, ``data.samples_per_epoch`` below the batch size trained on nothing,
a huge ``model.input_height`` ran out of memory, and a missing teacher was noticed (or never
noticed, when unused) only after the training. Every value is checked here, before any data is
read or any model built: finite, in its range, consistent with the others.

The ranges are what the code can do and what fits a machine: inputs from 32 px (five stride-2
stages) to 2048 px a side, and at most 4 Mpx a batch: one forward and backward pass at width 1.0
took 1.36 GB more memory for 8 x 256x256 (0.5 Mpx) and 0.38 GB for 2 x 256x256 (measured on the
CPU), about 2.7 GB per Mpx, so 4 Mpx is about 11 GB. The shipped configs use 1 Mpx.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass
from typing import Any

from . import TrainError

MAX_SIDE = 2048
MAX_BATCH_PIXELS = 4 * 1024 * 1024
BIG = 10 ** 9

#: (low, high) inclusive for each value; tuples are checked item by item
RANGES: dict[str, tuple[float, float]] = {
    "model.width": (0.1, 2.0), "model.input_height": (32, MAX_SIDE), "model.input_width": (32, MAX_SIDE),
    "data.eval_fraction": (0.0, 0.9), "data.val_fraction": (0.0, 0.9), "data.limit": (0, BIG),
    "data.max_side": (32, 8192), "data.samples_per_epoch": (1, BIG), "data.synth": (0.0, 1.0),
    "data.crop": (0, MAX_SIDE), "data.workers": (0, 64),
    "optim.epochs": (1, 100_000), "optim.batch_size": (1, 4096), "optim.lr": (1e-9, 10.0),
    "optim.weight_decay": (0.0, 10.0), "optim.warmup_steps": (0, BIG), "optim.parsing_epochs": (0, 100_000),
    "optim.grad_clip": (0.0, 1e6), "optim.bn_batches": (0, 100_000), "optim.bn_final_batches": (0, 100_000),
    "loss.boundary_width": (1, 64), "loss.ohem_keep": (0.01, 1.0), "loss.distill_temperature": (0.01, 100.0),
    "augment.geometry.scale": (0.05, 20.0), "augment.geometry.rotate": (0.0, 180.0),
    "augment.geometry.translate": (0.0, 1.0), "augment.geometry.flip": (0.0, 1.0),
    "augment.geometry.tps": (0.0, 1.0), "augment.geometry.tps_strength": (0.0, 1.0),
    "augment.photo.brightness": (0.0, 1.0), "augment.photo.contrast": (0.0, 1.0),
    "augment.photo.saturation": (0.0, 1.0), "augment.photo.hue": (0.0, 180.0), "augment.photo.gamma": (0.05, 20.0),
    "augment.photo.blur": (0.0, 1.0), "augment.photo.noise": (0.0, 1.0), "augment.photo.jpeg": (0.0, 1.0),
    "run.seed": (0, 2 ** 63 - 1), "run.threads": (0, 1024), "run.time_limit_min": (0.0, 10 ** 7),
}
LOSS_WEIGHT = (0.0, 1000.0)  # every other loss.* value is a weight
CHOICES = {"data.train_split": ("train", "val", "eval", "all"), "run.device": ("auto", "cpu", "cuda")}


def _values(obj: Any, prefix: str = ""):
    """(dotted name, value) of every leaf of a config dataclass."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        if is_dataclass(value):
            yield from _values(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value


def _in_range(name: str, value: Any, low: float, high: float) -> None:
    items = value if isinstance(value, tuple) else (value,)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not low <= v <= high:
            raise TrainError(f"config {name} must be between {low:g} and {high:g}, not {value!r}")
    if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
        raise TrainError(f"config {name} must be a range [low, high] with low <= high, not {list(value)!r}")


def check_teacher(name: str, where: str) -> None:
    """A teacher named in a config or flag must be a known model or an existing model file, now."""
    from ..errors import ModelError
    from ..models.registry import check_model_ref

    try:
        check_model_ref(name)
    except ModelError as exc:
        raise TrainError(f"{where}: {exc}") from None


def validate_config(cfg) -> None:
    """Raise a one-line :class:`TrainError` for the first value of ``cfg`` (a ``TrainConfig``)
    that is not finite, out of its range, or inconsistent with another."""
    for name, value in _values(cfg):
        if name in CHOICES and value not in CHOICES[name]:
            raise TrainError(f"config {name} must be one of {', '.join(CHOICES[name])}, not {value!r}")
        if name in RANGES:
            _in_range(name, value, *RANGES[name])
        elif name.startswith("loss."):
            _in_range(name, value, *LOSS_WEIGHT)
    m, d, o, loss = cfg.model, cfg.data, cfg.optim, cfg.loss
    if not m.name or len(m.name) > 200:
        raise TrainError("config model.name must be a name of 1 to 200 characters")
    if d.eval_fraction + d.val_fraction >= 1.0:
        raise TrainError(f"config data.eval_fraction + data.val_fraction must be below 1 (nothing left to train "
                         f"on), not {d.eval_fraction} + {d.val_fraction}")
    pixels = o.batch_size * m.input_height * m.input_width
    if pixels > MAX_BATCH_PIXELS:
        raise TrainError(f"config optim.batch_size x model input is {pixels / 2 ** 20:.0f} Mpx a batch, over "
                         f"{MAX_BATCH_PIXELS // 2 ** 20} Mpx: lower the batch size or the input size")
    if d.samples_per_epoch < o.batch_size:
        raise TrainError(f"config data.samples_per_epoch ({d.samples_per_epoch}) is below optim.batch_size "
                         f"({o.batch_size}): an epoch would train on nothing")
    if d.crop and d.crop > min(m.input_height, m.input_width):
        raise TrainError(f"config data.crop ({d.crop}) is larger than the model input "
                         f"{m.input_height}x{m.input_width}")
    if not any((loss.bce, loss.dice, loss.lovasz, loss.boundary, loss.ohem, loss.distill)):
        raise TrainError("config loss: every matte term is 0, so nothing would be learned")
    if loss.distill and not d.teacher:
        raise TrainError("config loss.distill needs data.teacher (a model name or a .onnx/.tflite file)")
    if d.teacher:
        check_teacher(d.teacher, "config data.teacher")
    if cfg.run.report_eval and cfg.run.eval_teacher:
        check_teacher(cfg.run.eval_teacher, "config run.eval_teacher")
