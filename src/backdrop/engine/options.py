"""``PipelineOptions``, derived from the stage declarations, never listed by hand.

The fields are the engine's own options (model, threads, quiet, working size) followed by every
option that a stage in ``stages.STAGES`` declares, with its declared default; ``raw()`` takes each
declared ``raw`` value; ``validate()`` checks each declared range or choice. A new stage's options
appear here, in the CLI, in the live settings keys and in the batch hash by being declared once.
"""

from __future__ import annotations

from dataclasses import asdict, field, fields, make_dataclass
from typing import Any

from ..errors import OptionError
from ..models import DEFAULT_MODEL, backends
from ..stages import STAGES
from ..stages.base import UNCHANGED, Opt

ENGINE_OPTIONS: list[Opt] = [
    Opt("model", DEFAULT_MODEL, f"model: a known name or {backends.describe_files()}", metavar="NAME|PATH"),
    Opt("threads", None, "inference threads (default: automatic)", low=1, high=256, optional=True,
        hashed=False, metavar="N"),
    Opt("quiet", False, "no progress bar or messages", hashed=False),
    Opt("work_size", 512, "long side of the working resolution of the matte stages", low=64, high=4096,
        metavar="PX"),
    Opt("matting_size", 512, "long side of a matting model's internal pass (RVM's downsample ratio; 512 over "
        "384: DAVIS IoU 0.891 -> 0.912, 55 vs 35 ms at 720p)", low=64, high=4096, metavar="PX"),
]
CLI_GENERAL = {"model", "threads", "quiet"}  # the CLI adds these with short flags of their own


def _all_options() -> list[Opt]:
    out: list[Opt] = list(ENGINE_OPTIONS)
    for spec in STAGES:
        out.extend(spec.options)
    seen: set[str] = set()
    for o in out:
        if o.name in seen:
            raise ValueError(f"option {o.name!r} is declared twice")
        seen.add(o.name)
    return out


OPTIONS: dict[str, Opt] = {o.name: o for o in _all_options()}
LIVE_OPTIONS: dict[str, Opt] = {n: o for n, o in OPTIONS.items() if o.live}
NETWORK_TIMERS = ("preprocess", "inference", "postprocess")


def timer_order() -> list[str]:
    """Timer keys in the order a frame meets them (bench's table order)."""
    return ["decode", "downscale", *NETWORK_TIMERS, *(s.name for s in STAGES), "composite", "encode"]


def _raw(cls, **overrides: Any):
    """The bare network: every stage off (each option's declared ``raw`` value). The baseline that
    ``backdrop eval``/``bench`` compare the default pipeline against (CLI: ``--raw``)."""
    base = {n: o.raw for n, o in OPTIONS.items() if o.raw is not UNCHANGED}
    return cls(**{**base, **overrides})


def _validate(self):
    """Check (and convert) every field against its declaration; errors name the field."""
    for name, opt in OPTIONS.items():
        setattr(self, name, opt.check(getattr(self, name)))
    return self


def _for_model(cls, model: str = DEFAULT_MODEL, **overrides: Any):
    """The defaults with the stage defaults ``model`` prefers (RVM: no ROI crop, its own full-size
    alpha instead of our refinement), then ``overrides``."""
    from ..models import stage_defaults

    preferred = {k: v for k, v in stage_defaults(model).items() if k in OPTIONS}
    return cls(**{**preferred, "model": str(model), **overrides})


def _settings(self) -> dict[str, Any]:
    """The options the output depends on (what the batch settings hash covers)."""
    return {n: v for n, v in asdict(self).items() if OPTIONS[n].hashed}


def _is_raw(self) -> bool:
    """True when no stage runs: the computed meaning of raw (no list to forget a stage in)."""
    return not any(spec.enabled(self) for spec in STAGES)


PipelineOptions = make_dataclass(
    "PipelineOptions",
    [(o.name, Any, field(default=o.default)) for o in OPTIONS.values()],
    namespace={"raw": classmethod(_raw), "for_model": classmethod(_for_model), "validate": _validate,
               "settings": _settings,
               "all_stages_off": property(_is_raw)},
)
PipelineOptions.__module__ = __name__
PipelineOptions.__doc__ = (
    "Every switch of the pipeline, one field per declared option (``stages/*.py`` and the engine's "
    "own); defaults are the measured best (docs/quality.md) and :meth:`raw` turns every stage off.\n\n"
    "Fields: " + ", ".join(f"``{o.name}`` ({o.help}; default {o.default!r})" for o in OPTIONS.values()))


def check_overrides(overrides: dict[str, Any]) -> None:
    """Unknown keyword options are a user error naming them."""
    unknown = set(overrides) - {f.name for f in fields(PipelineOptions)}
    if unknown:
        raise OptionError(f"unknown pipeline option(s): {', '.join(sorted(unknown))}")
