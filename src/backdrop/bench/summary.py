"""Per-stage timing summaries for ``backdrop bench``, in the order a frame meets the stages.

The pipeline's :class:`~backdrop.timing.StageTimer` records every stage it runs; this module turns
those samples into the per-stage rows of a result (adding the per-frame share of stages that do
not run on every frame) and puts the rows in pipeline order. :data:`STAGE_ORDER` lives here and
nowhere else, derived from the pipeline's stage declarations.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.options import timer_order
from ..timing import StageTimer

# Stages in the order a frame meets them, derived from the declarations (stages.STAGES); anything
# else the pipeline records comes after.
STAGE_ORDER = timer_order()


def stage_summary(timer: StageTimer, frames: int) -> dict[str, dict[str, float]]:
    """The timer's summary (every stage it recorded), plus the per-frame share of each stage."""
    out = {}
    summary = timer.summary()
    for name, s in summary.items():
        values = timer.samples.get(name, [])
        total = float(np.sum(values)) if len(values) else s.get("mean", 0.0) * s.get("n", 0)
        out[name] = {**{k: float(v) for k, v in s.items() if k != "n"}, "n": int(s.get("n", len(values))),
                     "per_frame": total / frames if frames else 0.0}
    return out


def order_stages(stages: dict[str, Any]) -> dict[str, Any]:
    """Stages in the order a frame meets them; stages unknown here go just before ``encode``."""
    known = [s for s in STAGE_ORDER if s in stages and s != "encode"]
    rest = sorted(s for s in stages if s not in STAGE_ORDER)
    tail = ["encode"] if "encode" in stages else []
    return {s: stages[s] for s in known + rest + tail}
