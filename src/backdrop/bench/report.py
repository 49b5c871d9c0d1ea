"""How ``backdrop bench`` results are shown: the terminal text and the sections of ``docs/benchmarks.md``.

Formatting only, from the JSON-able result of :func:`~backdrop.bench.run_bench`; nothing here
measures, so a stored result can be rendered again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..io.atomic import write_bytes
from .machine import describe_machine

# -- text output ------------------------------------------------------------------------------

def _fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def format_text(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [f"backdrop bench: model {cfg['model']}, background {cfg['background']}, "
             f"crf {cfg['crf']} preset {cfg['preset']}",
             f"machine: {describe_machine(result['machine'])}"]
    for run in result["runs"]:
        audio = "with audio" if run.get("has_audio") else "no audio"
        lines += ["", f"== {run['name']}: {run['width']}x{run['height']}, {run['frames']} frames, {audio}",
                  f"   {run['source']}",
                  f"   {'stage':<12}{'min':>9}{'median':>9}{'p95':>9}{'per frame':>11}   ms"]
        for stage, s in run["stages"].items():
            note = "" if s["n"] == run["frames"] or stage == "decode" else f"  ({s['n']} calls)"
            lines.append(f"   {stage:<12}{s['min']:>9.2f}{s['median']:>9.2f}{s['p95']:>9.2f}{s['per_frame']:>11.2f}{note}")
        if "e2e" in run:
            lines.append(f"   end-to-end {run['e2e']['fps']:.1f} frames/s, bare transcode {run['transcode']['fps']:.1f} "
                         f"frames/s, ratio {_fmt(run['ratio'], 2)}"
                         + (f", {100 * run['skipped_fraction']:.0f}% inferences skipped" if run.get("skipped_fraction") else ""))
        if "live" in run:
            lv = run["live"]
            lines.append(f"   live latency p50 {lv['p50_ms']:.1f} ms, p95 {lv['p95_ms']:.1f} ms "
                         f"({lv['max_fps']:.0f} frames/s at p50)")
        if "memory" in run:
            m = run["memory"]
            lines.append(f"   peak RSS {_fmt(m.get('peak_mb'), 0)} MB (after model load {_fmt(m.get('baseline_mb'), 0)} MB)")
    lines.append("")
    lines.append("Ratios travel between machines; absolute numbers belong to the machine above.")
    return "\n".join(lines)


# -- markdown (benchmarks/ and docs/benchmarks.md) -------------------------------------------

def update_markdown_section(path: Path, name: str, body: str, *, title: str = "# Benchmarks") -> None:
    """Replace the text between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` in ``path``.

    Anything outside the markers (other sections, hand-written notes) is kept; a missing file or
    section is created (the section is appended).
    """
    path = Path(path)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else f"{title}\n"
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pat.search(text):
        text = pat.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, text)
