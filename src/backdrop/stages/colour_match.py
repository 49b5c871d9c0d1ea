"""Colour match: move the person's brightness part of the way toward the new background's.

For a dark room composited over a sunny beach. Off by default: on the shared portraits it moved
composite error either way depending on the pair (docs/quality.md), so it is a taste control.
"""

from __future__ import annotations

from ..compose.effects import match_brightness
from .base import Opt, Stage, StageSpec


class ColourMatchStage(Stage):
    def over(self, fs, background) -> None:
        fs.fg = match_brightness(fs.fg, fs.matte, background, self.options.colour_match)


STAGE = StageSpec(
    name="colour_match", phase="compose", make=ColourMatchStage,
    reads=("fg", "matte"), writes=("fg",),
    summary="dark room over a bright background: the person's brightness moved toward it",
    options=[Opt("colour_match", 0.0, "match the person's brightness to the background, 0..1", low=0, high=1,
                 raw=0.0, live=True, metavar="S")],
    enabled=lambda o: o.colour_match > 0,
)
