"""The config of ``backdrop train sr``: one TOML/YAML file, as for ``train fit``.

Why its own dataclasses: super-resolution shares nothing with the matte student but the file
format, the ``--set section.key=value`` overrides and the one-line errors, which come from
:mod:`.config` (``read_config_dict``, ``apply_overrides``, ``_build``). Everything that changes
the weights (data, held-out clip, degradation, schedule, seed) is written here and copied beside
the shipped weights, so ``backdrop train sr configs/sr-x2.toml`` remakes them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import TrainError
from .config import _build, apply_overrides, read_config_dict


@dataclass
class SRModelConfig:
    name: str = "sr-x2"
    scale: int = 2
    channels: list[int] = field(default_factory=lambda: [16, 8, 8])  # hidden 3x3 convs, then 3x3 -> scale^2


@dataclass
class SRDataConfig:
    clips: list[str] = field(default_factory=list)     # videos or folders of videos
    photos: list[str] = field(default_factory=list)    # images or folders of images (slow pans)
    holdout: list[str] = field(default_factory=list)   # file names never trained on (evaluation)
    frames_per_window: int = 16                        # frames encoded as one stream
    windows_per_clip: int = 2
    keep_every: int = 2                                # frames kept of each decoded window
    photo_frames: int = 8                              # frames of a photo's slow pan
    max_width: int = 1280                              # full-size frames larger are shrunk first
    max_height: int = 720
    codecs: list[str] = field(default_factory=lambda: ["h264", "vp8"])
    kbps_min: float = 300.0                            # call bit rates for 640x360 (scaled by area)
    kbps_max: float = 2500.0
    val_fraction: float = 0.1                          # of the windows, by hash: never trained on
    patch: int = 32                                    # small-side patch size


@dataclass
class SROptimConfig:
    steps: int = 6000
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 100
    eval_every: int = 250                              # steps between validation (and checkpoints)


@dataclass
class SRRunConfig:
    out: str = "runs/sr-x2"
    seed: int = 0
    threads: int = 2
    time_limit_min: float = 0.0                        # stop with a checkpoint after this (resume later)
    export_to: str = ""                                # also write the weights here ("" = run folder only)


@dataclass
class SRConfig:
    model: SRModelConfig = field(default_factory=SRModelConfig)
    data: SRDataConfig = field(default_factory=SRDataConfig)
    optim: SROptimConfig = field(default_factory=SROptimConfig)
    run: SRRunConfig = field(default_factory=SRRunConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "SRConfig":
        cfg = _build(cls, d or {}, "")
        cfg.model.channels = [int(c) for c in cfg.model.channels]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.model.scale != 2:
            raise TrainError(f"model.scale must be 2 (the only factor the page and the runtime take), "
                             f"not {self.model.scale}")
        if not self.model.channels or any(c < 1 or c > 64 for c in self.model.channels):
            raise TrainError("model.channels must list 1 to 64 channels per hidden layer")
        if self.data.patch < 8 or self.optim.batch_size < 1 or self.optim.steps < 1:
            raise TrainError("data.patch must be >= 8, optim.batch_size and optim.steps >= 1")
        if not 0 < self.data.kbps_min <= self.data.kbps_max:
            raise TrainError("data.kbps_min must be > 0 and <= data.kbps_max")


def load_sr_config(path: str | Path | None, overrides: list[str] | None = None) -> SRConfig:
    d = read_config_dict(path) if path else {}
    return SRConfig.from_dict(apply_overrides(d, overrides or []))


__all__ = ["SRConfig", "load_sr_config"]
