"""Flags shared by every command that runs the pipeline, derived from the declarations.

Each flag is made from an :class:`~backdrop.stages.base.Opt` (name, default, range, help) of the
engine or of a stage in ``stages.STAGES``, so a new stage's options appear here without an edit,
and the help prints the declared defaults. A command shows only the flags that do something for
it: ``image`` has no frame-to-frame stages, ``eval`` no compose stages and no background.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..compose.backgrounds import DEFAULT_BACKGROUND, BackgroundSpec, grammar
from ..compose.backgrounds.presenter import parse_placement, parse_size, parse_slide_times
from ..engine.options import CLI_GENERAL, ENGINE_OPTIONS, OPTIONS, PipelineOptions
from ..errors import BackgroundError, OptionError
from ..models.registry import MODELS
from ..stages import STAGES
from ..stages.base import Opt

SLIDE_KINDS = ("image", "video", "presenter")  # what --presenter can take as --background


def _add_flag(group, opt: Opt) -> None:
    flag = opt.cli_flag
    if opt.value_type is bool:
        action = "store_false" if opt.default else "store_true"
        group.add_argument(flag, dest=opt.name, action=action, default=None,
                           help=f"turn off: {opt.help}" if opt.default else opt.help)
        return
    extra: dict[str, Any] = {"choices": opt.choices} if opt.choices else {"type": opt.value_type, "metavar": opt.metavar}
    shown = "" if opt.default in ("", None) else f" (default {opt.default})"
    group.add_argument(flag, dest=opt.name, default=None, help=opt.help + shown, **extra)


def add_pipeline_args(p: argparse.ArgumentParser, *, background: bool = True, video: bool = True,
                      compose: bool = True, presenter: bool = False, without: tuple[str, ...] = ()) -> None:
    """The pipeline's flags on ``p``: ``video=False`` hides frame-to-frame options (one image),
    ``compose=False`` the compose stages (mattes only), ``presenter`` adds presenter mode,
    ``without`` names options whose flag the command uses otherwise."""
    if background:
        p.add_argument("--background", "-b", default=DEFAULT_BACKGROUND, metavar="BG",
                       help=f"{grammar()} (default {DEFAULT_BACKGROUND})")
    model = OPTIONS["model"]
    segmenters = ", ".join(n for n, km in MODELS.items() if km.spec.is_segmenter)
    p.add_argument("--model", "-m", default=model.default, metavar=model.metavar,
                   help=f"{segmenters} (rvm: opt-in, GPL-3.0 weights) or {model.help.split(' or ')[-1]} "
                        f"(default {model.default})")
    p.add_argument("--threads", type=int, default=None, metavar="N", help=OPTIONS["threads"].help)
    g = p.add_argument_group("matte stages (defaults are the measured best; see docs/quality.md)")
    for opt in ENGINE_OPTIONS:
        if opt.name not in CLI_GENERAL:
            _add_flag(g, opt)
    for spec in STAGES:
        if spec.phase == "compose" and not compose:
            continue
        for opt in spec.options:
            if (video or not opt.video_only) and opt.name not in without:
                _add_flag(g, opt)
    g.add_argument("--quality", choices=["normal", "high"], default=None,
                   help="high = --refine high (slow, for photos)")
    if presenter:
        g2 = p.add_argument_group("presenter mode")
        g2.add_argument("--presenter", default=None, metavar="PLACE",
                        help="put the person over --background slides.pdf|DIR|screen.mp4 at "
                             "corner|left|right|x,y,scale")
        g2.add_argument("--slide-times", default=None, metavar="T0,T1,...",
                        help="seconds at which each slide starts (files; default: slides spread evenly)")
        g2.add_argument("--output-size", default=None, metavar="WxH",
                        help="output size in presenter mode (default: the slides' aspect at the video's height)")
    p.add_argument("--raw", action="store_true",
                   help="bare network output: turn every matte stage off (the baseline)")
    p.add_argument("--quiet", "-q", action="store_true", help=OPTIONS["quiet"].help)


def add_upscale_arg(p: argparse.ArgumentParser) -> None:
    """``--upscale 2``: super-resolve the finished frames x2, the last step (see ``backdrop upscale``)."""
    p.add_argument("--upscale", type=int, default=0, metavar="2",
                   help="make the output twice as large with Backdrop's own super-resolution network, "
                        "after compositing (only 2 is trained)")


def upscale_of(args: argparse.Namespace) -> int:
    """The --upscale factor, checked (0: off); one line for a factor that is not trained."""
    value = getattr(args, "upscale", 0) or 0
    if value:
        from ..superres.frames import check_scale

        check_scale(value, option="upscale")
    return value


def options_from_args(args: argparse.Namespace) -> dict:
    """The PipelineOptions fields present on ``args`` as a dict of overrides."""
    return {k: v for k, v in vars(args).items() if k in OPTIONS and v is not None}


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """A PipelineOptions from the flags: the defaults, or the raw baseline with ``--raw``."""
    model = getattr(args, "model", None) or PipelineOptions().model
    base = PipelineOptions.raw() if getattr(args, "raw", False) else PipelineOptions.for_model(model)
    overrides = options_from_args(args)
    if getattr(args, "quality", None) == "high":
        overrides["refine"] = "high"
    return replace(base, **overrides).validate()


def flag_of(option: str) -> str:
    """The command-line flag of a pipeline option (for errors)."""
    return OPTIONS[option].cli_flag if option in OPTIONS else f"--{option.replace('_', '-')}"


def background_from_args(args: argparse.Namespace) -> str:
    """The --background value as spec text; with --presenter, the presenter spec over it."""
    text = args.background
    if not getattr(args, "presenter", None):
        for name in ("slide_times", "output_size"):
            if getattr(args, name, None):
                raise OptionError(f"--{name.replace('_', '-')} goes with --presenter")
        return text
    try:
        spec = BackgroundSpec.parse(text)
    except BackgroundError:
        spec = None  # a folder of slides has no suffix: presenter mode reads it
    if spec is not None and spec.kind not in SLIDE_KINDS:
        raise OptionError(f"--presenter needs slides: --background slides.pdf, a folder of slide images or a "
                          f"video, not {text!r}")
    parse_placement(args.presenter)
    source = spec.params["source"] if spec is not None and spec.kind == "presenter" else Path(text).expanduser()
    return BackgroundSpec("presenter", {
        "source": source, "place": args.presenter.strip().lower(),
        "times": parse_slide_times(args.slide_times) if args.slide_times else None,
        "size": parse_size(args.output_size) if args.output_size else None}).format()
