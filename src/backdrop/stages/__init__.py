"""The matte and compose stages, in the order a frame meets them.

``STAGES`` is the pipeline as declared data (like MediaPipe's ``.pbtxt`` graphs): it reads like
the README diagram, and everything a stage needs elsewhere (options, ``--raw``, flags, live keys,
bench order, batch hash) is derived from it. Adding a stage is one file ending in
``STAGE = StageSpec(...)`` plus one line here.
"""

from __future__ import annotations

from . import (cleanup, decontaminate, delay, despill, key, light_wrap, people, plate, refine, relight, steady,
               still, temporal, touch_up)
from .base import Opt, Stage, StageContext, StageSpec

STAGES: list[StageSpec] = [
    still.STAGE,          # skip when still: reuse the matte while the edge band did not change
    people.STAGE,         # find and follow every person; each segmented in an upright crop (the networks run here)
    cleanup.STAGE,        # stray blobs dropped, holes filled
    temporal.STAGE,       # motion-guided fusion with the past
    delay.STAGE,          # one-frame-delay flicker filter (files)
    refine.STAGE,         # guided upsampling to full size
    key.STAGE,            # chroma key: the screen gives the matte, the network guards it
    plate.STAGE,          # clean plate: the difference to the empty scene, the network guards it
    steady.STAGE,         # steady the refined matte where nothing moved
    decontaminate.STAGE,  # the person's own edge colours
    despill.STAGE,        # no cast of a coloured old background on the edge
    touch_up.STAGE,       # skin smoothing of the person (after the colours are the person's own)
    relight.STAGE,        # the person's light harmonized with the new background; a dark face lifted
    light_wrap.STAGE,     # the new background's light on the rim
]

__all__ = ["STAGES", "Opt", "Stage", "StageContext", "StageSpec"]
