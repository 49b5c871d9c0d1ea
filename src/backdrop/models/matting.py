"""Matting models in the Robust Video Matting (RVM) style: full frame in, alpha and foreground out.

An RVM-style ONNX file takes ``src`` (RGB NCHW in [0, 1] at the frame's full resolution), the
recurrent states ``r1i``..``r4i`` and ``downsample_ratio`` (float32, shape [1]); it returns ``fgr``
(foreground RGB in [0, 1]), ``pha`` (alpha in [0, 1]) and ``r1o``..``r4o``, fed back as the next
frame's ``r1i``..``r4i``. Internally it shrinks the frame by ``downsample_ratio`` for its encoder
and refines the result at full resolution (deep guided filter). RVM's inference notes suggest a
shrunk size between 256 and 512 px; its own converter picks ``min(1, 512 / max(h, w))``.

This module is data and arithmetic only (no runtime import): the registry, the ONNX backend and
the pipeline all read it.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

from ..errors import OptionError
from .spec import ModelSpec

RVM_STAGE_DEFAULTS: dict = {"roi": False, "refine": "bilinear", "delay": False, "cleanup": False}
"""Pipeline option defaults RVM-style models prefer, measured on the shared sets (docs/quality.md):
no ROI crop (it sees the whole frame: a crop breaks its recurrent state), its own full-size alpha
instead of our refinement (guided: lucia IoU 0.889 -> 0.883), no one-frame delay (it cost dtSSD on
lucia), no cleanup (it trims RVM's soft hair: composite edge error over dark 16.5 -> 17.4, for +0.005
hike IoU); temporal fusion and steadying stay (static-clip flicker 2-4x lower than raw, DAVIS
unchanged). The engine's ``matting_size`` (512 px) sets its internal pass."""

RVM_RATIO_INPUT = "downsample_ratio"
RVM_REQUIRED_INPUTS = frozenset({"r1i", RVM_RATIO_INPUT})
RVM_REQUIRED_OUTPUTS = frozenset({"r1o", "fgr", "pha"})
RVM_LEGACY_SIZE = 256
"""Input size of the legacy ``run()``/``infer()`` path (a small alpha, like a segmentation model)."""


def is_rvm_style(input_names: Iterable[str], output_names: Iterable[str]) -> bool:
    """True when a model's tensor names are RVM's: ``r1i`` + ``downsample_ratio`` in, ``r1o`` + ``fgr`` + ``pha`` out."""
    return RVM_REQUIRED_INPUTS <= set(input_names) and RVM_REQUIRED_OUTPUTS <= set(output_names)


def rvm_spec(name: str, *, height: int = RVM_LEGACY_SIZE, width: int = RVM_LEGACY_SIZE) -> ModelSpec:
    """The spec of an RVM-style model: NCHW, [0, 1] input, task ``matting``, RVM's stage defaults.

    ``height``/``width`` are the input of the legacy ``run()``/``infer()`` path (the whole frame
    shrunk to it, ``downsample_ratio`` 1); :meth:`~backdrop.models.base.Segmenter.matte_full`
    takes frames of any size."""
    return ModelSpec(
        name=name, input_height=height, input_width=width, layout="NCHW", output_layout="NCHW",
        task="matting", extra={RVM_RATIO_INPUT: 1.0}, stage_defaults=dict(RVM_STAGE_DEFAULTS),
    )


def downsample_ratio(height: int, width: int, long_side: int) -> float:
    """RVM's ``downsample_ratio`` for a frame: its long side shrinks to ``long_side`` (never grows).

    ``min(1, long_side / max(h, w))``, raised where a very thin frame would otherwise shrink its
    short side to under one pixel (the encoder then has nothing to convolve).
    """
    if isinstance(long_side, bool) or not isinstance(long_side, numbers.Integral) or long_side < 1:
        raise OptionError(f"long_side must be a whole number of pixels >= 1, not {long_side!r}")
    ratio = min(1.0, int(long_side) / max(height, width))
    # the floor of short * ratio must stay >= 1 in float32; the margin keeps it off the edge
    return min(1.0, max(ratio, 1.001 / min(height, width)))
