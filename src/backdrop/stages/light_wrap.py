"""Light wrap: a little of the new background's light on the person's rim.

A real person in front of a bright background is lit at the edge by it; screening a little of the
blurred background onto the outline makes the cut-out look like it belongs (``compose/effects.py``).
Off by default: a look, not a correction.
"""

from __future__ import annotations

from ..compose.effects import light_wrap
from .base import Opt, Stage, StageSpec


class LightWrapStage(Stage):
    def finish(self, fs, out, background):
        return light_wrap(out, background, fs.matte, self.options.light_wrap)


STAGE = StageSpec(
    name="light_wrap", phase="compose", make=LightWrapStage,
    reads=("matte",), web="light_wrap",
    summary="cut-out look: the new background's light screened onto the person's edge",
    options=[Opt("light_wrap", 0.0, "light wrap strength, 0..1", low=0, high=1, raw=0.0, live=True,
                 metavar="S")],
    enabled=lambda o: o.light_wrap > 0,
)
