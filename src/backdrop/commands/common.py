"""Flags shared by every command that runs the pipeline, mapped 1:1 onto PipelineOptions."""

from __future__ import annotations

import argparse
from dataclasses import fields, replace

from ..pipeline import PipelineOptions


def add_pipeline_args(p: argparse.ArgumentParser, *, background: bool = True) -> None:
    if background:
        p.add_argument("--background", "-b", default="blur", metavar="BG",
                       help="IMG | VIDEO | #RRGGBB | blur[:STRENGTH] | transparent | matte (default: blur)")
    p.add_argument("--model", "-m", default="selfie", metavar="NAME|PATH",
                   help="selfie (default), selfie-landscape, or a .tflite/.onnx file")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="inference threads")
    g = p.add_argument_group("matte stages (defaults are the measured best; see docs/quality.md)")
    g.add_argument("--no-roi", dest="roi", action="store_false", default=None,
                   help="run the network on the whole frame instead of a crop around the person")
    g.add_argument("--redetect-every", type=int, default=None, metavar="N",
                   help="full-frame re-detection every N frames (default 30)")
    g.add_argument("--no-cleanup", dest="cleanup", action="store_false", default=None,
                   help="keep stray blobs and holes")
    g.add_argument("--keep", choices=["all", "main", "faces"], default=None,
                   help="which people cleanup keeps: all (default), main (touching the largest), faces")
    g.add_argument("--refine", choices=["bilinear", "guided", "high"], default=None,
                   help="edge refinement: guided (default), bilinear, high (closed-form matting, photos)")
    g.add_argument("--quality", choices=["normal", "high"], default=None,
                   help="high = --refine high (slow, for photos)")
    g.add_argument("--work-size", type=int, default=None, metavar="PX",
                   help="long side of the working resolution of the matte stages (default 512)")
    g.add_argument("--temporal", type=float, default=None, metavar="S",
                   help="motion-guided temporal fusion strength 0..0.99, 0 = off (default 0.93)")
    g.add_argument("--no-delay", dest="delay", action="store_false", default=None,
                   help="no one-frame-delay flicker filter (files)")
    g.add_argument("--no-skip", dest="skip_still", action="store_false", default=None,
                   help="run the network on every frame even when the person is still")
    g.add_argument("--max-skip", type=int, default=None, metavar="K",
                   help="re-run the network at least every K+1 frames (default 4)")
    g.add_argument("--no-decontaminate", dest="decontaminate", action="store_false", default=None,
                   help="no foreground colour estimation in the edge band")
    g.add_argument("--light-wrap", type=float, default=None, metavar="S", help="light wrap 0..1 (default 0)")
    g.add_argument("--colour-match", type=float, default=None, metavar="S",
                   help="match the person's brightness to the background 0..1 (default 0)")
    if background:
        g2 = p.add_argument_group("presenter mode")
        g2.add_argument("--presenter", default=None, metavar="PLACE",
                        help="put the person over --background slides.pdf|DIR|screen.mp4 at "
                             "corner|left|right|x,y,scale")
        g2.add_argument("--slide-times", default=None, metavar="T0,T1,...",
                        help="seconds at which each slide starts (file mode)")
    p.add_argument("--raw", action="store_true",
                   help="bare network output: turn every matte stage off (the baseline)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")


def options_from_args(args: argparse.Namespace) -> dict:
    """The PipelineOptions fields present on ``args`` as a dict of overrides."""
    names = {f.name for f in fields(PipelineOptions)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """A PipelineOptions from the flags: the defaults, or the raw baseline with ``--raw``."""
    base = PipelineOptions.raw() if getattr(args, "raw", False) else PipelineOptions()
    overrides = options_from_args(args)
    if getattr(args, "quality", None) == "high":
        overrides["refine"] = "high"
    return replace(base, **overrides).validate()


def background_from_args(args: argparse.Namespace, fps: float | None = None):
    """The --background value, or a presenter background when --presenter is given."""
    if getattr(args, "presenter", None):
        from ..compose.presenter import PresenterBackground
        from ..errors import OptionError

        times = None
        if args.slide_times:
            try:
                times = [float(t) for t in args.slide_times.split(",")]
            except ValueError:
                raise OptionError(f"--slide-times must be seconds separated by commas: {args.slide_times!r}") from None
        return PresenterBackground(args.background, args.presenter, times, fps=fps or 30.0)
    return args.background
