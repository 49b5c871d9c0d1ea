"""Decontamination: the person's true edge colours, so no halo of the old room shows.

The work is Blur-Fusion foreground estimation (``compose/foreground.py``, Forte & Pitie, ICIP
2021) at working size, applied in the edge band only. Measured on the shared soft portraits: it
lowers the composite error in the edge band (docs/quality.md).
"""

from __future__ import annotations

from ..compose.foreground import decontamination
from .base import Opt, Stage, StageSpec


class DecontaminateStage(Stage):
    def foreground(self, fs) -> None:
        if fs.model_fg is not None:  # a matting model estimated the person's colours itself (RVM's fgr)
            fs.fg = fs.model_fg
            return
        corr = decontamination(*fs.working_pair())  # at working size; applied at full size when used
        if corr is not None:
            fs.add_correction(corr)


STAGE = StageSpec(
    name="decontaminate", phase="compose", make=DecontaminateStage,
    summary="halo of the old background in hair: Blur-Fusion foreground colour estimate",
    reads=("work_frame", "work_matte"), optional=("model_fg",), writes=("fg", "corrections"), web="decontaminate",
    options=[Opt("decontaminate", True, "estimate the person's own colours in the edge band", raw=False,
                 live=True)],
)
