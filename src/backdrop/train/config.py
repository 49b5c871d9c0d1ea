"""The training config: one TOML or YAML file, sections mapped onto dataclasses.

Why a file and not flags: a run must be repeatable and comparable, so everything that changes
the result (data, split, augmentation, loss weights, schedule, seed) is written down in one
place, copied into the run folder and into every checkpoint. ``--set section.key=value`` on the
command line overrides single values (for quick experiments and tests) and is recorded too.

Relative paths in the file are resolved against the current directory (run from the project
root, as the examples in docs/training.md do).
"""

from __future__ import annotations

import ast
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import TrainError
from .geometry import GeometryConfig
from .losses import LossWeights
from .photometric import PhotoConfig


@dataclass
class ModelConfig:
    width: float = 0.5
    input_height: int = 256
    input_width: int = 256
    parsing_head: bool = True
    name: str = "backdrop-student"


@dataclass
class DataConfig:
    train: list[str] = field(default_factory=list)       # folders of pairs (index.csv or images/+masks/)
    train_split: str = "train"                           # train | val | eval | all (of each folder)
    val: list[str] = field(default_factory=list)         # empty: the "val" split of the train folders
    backgrounds: list[str] = field(default_factory=list) # folders/videos; empty: inpainted train photos
    eval_fraction: float = 0.2
    val_fraction: float = 0.1
    split_salt: str = "backdrop"
    limit: int = 0                                       # use only the first N training pairs (0 = all)
    max_side: int = 512
    samples_per_epoch: int = 512
    synth: float = 0.7
    crop: int = 0                                        # random square training crops (0 = full input)
    teacher: str = ""                                    # model for distillation targets ("" = none)
    workers: int = 0


@dataclass
class OptimConfig:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    parsing_epochs: int = 2          # first stage: parsing head trained alongside the matte
    grad_clip: float = 5.0
    bn_batches: int = 4              # batches that re-estimate BatchNorm statistics each epoch
    bn_final_batches: int = 32       # ... and once more, precisely, for final.pt


@dataclass
class RunConfig:
    out: str = "runs/student"
    seed: int = 0
    threads: int = 0                 # torch CPU threads (0 = torch default)
    device: str = "auto"             # auto | cpu | cuda
    amp: bool = True                 # mixed precision on CUDA (ignored on the CPU)
    time_limit_min: float = 0.0      # stop (with a checkpoint) after the epoch that passes this
    export: bool = True              # write model.onnx at the end
    report_eval: bool = True         # score the eval split, student and teacher, at the end
    eval_teacher: str = "selfie"


@dataclass
class AugmentConfig:
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    photo: PhotoConfig = field(default_factory=PhotoConfig)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Built and validated (:func:`.checks.validate_config`): a bad value is one line here."""
        from .checks import validate_config

        cfg = _build(cls, d or {}, "")
        validate_config(cfg)
        return cfg


def _coerce(value, current, where: str):
    """Convert a value from TOML/YAML/--set to the type of the default (tuples, floats...)."""
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise TrainError(f"{where} must be true or false, not {value!r}")
    try:
        if isinstance(current, float):
            return float(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, tuple):
            return tuple(float(v) for v in value)
        if isinstance(current, list):
            return [str(v) for v in ([value] if isinstance(value, str) else value)]
        if isinstance(current, str):
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise TrainError(f"{where} has a bad value {value!r}") from None
    return value


def _build(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise TrainError(f"config section {prefix or 'root'} must be a table")
    obj = cls()
    names = {f.name: f for f in fields(cls)}
    for key, value in d.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise TrainError(f"unknown config key {where}")
        current = getattr(obj, key)
        if hasattr(current, "__dataclass_fields__"):
            setattr(obj, key, _build(type(current), value, where + "."))
        else:
            setattr(obj, key, _coerce(value, current, where))
    return obj


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """``section.key=value`` strings applied to a raw config dict (values parsed as JSON)."""
    for item in overrides or []:
        if "=" not in item:
            raise TrainError(f"--set needs section.key=value, not {item!r}")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise TrainError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = _parse_value(text)
    return d


def read_config_dict(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"config file not found: {path}")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise TrainError(f"{path.name} is not valid: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError without importing yaml at module level
        raise TrainError(f"{path.name} is not valid YAML: {str(exc).splitlines()[0]}") from None
    raise TrainError(f"config must be .toml or .yaml, not {path.suffix or 'no suffix'}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A :class:`TrainConfig` from a TOML/YAML file (or the defaults) plus ``--set`` overrides."""
    d = read_config_dict(path) if path else {}
    return TrainConfig.from_dict(apply_overrides(d, overrides or []))
