"""What an evaluation returns and how it is shown: :class:`EvalReport`, its JSON and the terminal table.

Formatting only, from the numbers the runs computed; nothing here reads media or runs a model,
so a stored report can be rendered again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

METRIC_LABELS = {
    "iou": "mean IoU", "dataset_iou": "dataset IoU", "boundary_f": "boundary F",
    "mad": "MAD x1e3", "mse": "MSE x1e3", "grad": "Grad /1e3", "conn": "Conn /1e3",
    "sad_unknown": "SAD unknown /1e3", "dtssd": "dtSSD", "flicker": "flicker x1e3",
    "static_fraction": "static share",
}
HIGHER_IS_BETTER = {"iou", "dataset_iou", "boundary_f"}


def json_safe(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, paths -> str."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


@dataclass
class EvalReport:
    """What an evaluation found. ``summary`` holds the aggregates, ``items`` one dict per image or
    frame (``name`` plus its metrics), ``worst`` the paths of the pictures written."""

    mode: str  # "images", "sequence" (with truth), "video" (no truth: flicker only) or "composite"
    source: str
    truth: str | None
    summary: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    worst: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))



# -- terminal table --------------------------------------------------------------------------------

def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if key in ("iou", "dataset_iou", "boundary_f", "static_fraction"):
        return f"{v:.4f}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def format_report(report: EvalReport, *, band: float = 3, show_worst: int = 5) -> str:
    """The human-readable table ``backdrop eval`` prints."""
    s = report.summary
    cfg = report.config
    what = {"images": "images", "sequence": "frames", "video": "frames (no ground truth)"}[report.mode]
    lines = [f"backdrop eval: {s['count']} {what} from {report.source}"
             + (f" against {report.truth}" if report.truth else ""),
             f"  model {cfg.get('model', '?')}" + (", soft truth" if s.get("soft_truth") else "")]
    order = ["iou", "dataset_iou", "boundary_f", "mad", "mse", "grad", "conn", "sad_unknown", "dtssd",
             "flicker", "static_fraction"]
    rows = [(METRIC_LABELS[k] + (f" ({band:g}px)" if k == "boundary_f" else ""), _fmt(k, s[k]),
             "higher is better" if k in HIGHER_IS_BETTER else ("" if k == "static_fraction" else "lower is better"))
            for k in order if k in s]
    width = max(len(r[0]) for r in rows)
    lines.append("")
    lines += [f"  {label:<{width}}  {value:>10}  {hint}".rstrip() for label, value, hint in rows]
    key = "iou" if report.mode != "video" else "flicker"
    scored = [it for it in report.items if it.get(key) is not None]
    if scored and show_worst and report.mode != "video":
        worst = sorted(scored, key=lambda it: it[key])[:show_worst]
        lines += ["", "  worst by IoU: " + ", ".join(f"{it['name']} {it['iou']:.3f}" for it in worst)]
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.worst:
        lines.append(f"  wrote {len(report.worst)} picture(s) to {Path(report.worst[0]).parent}")
    return "\n".join(lines)
