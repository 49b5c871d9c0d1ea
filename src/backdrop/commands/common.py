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
    return replace(base, **options_from_args(args)).validate()
