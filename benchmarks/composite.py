"""Composite error and synthetic-truth sets for several pipeline configurations, in one table.

    python benchmarks/composite.py                                   # raw vs default
    python benchmarks/composite.py --config "no-decon:decontaminate=False" --config "key:key=green"
    python benchmarks/composite.py --limit 5 --json > c.json         # a quick look

Sets, built in a temporary folder from ../shared/data (or BACKDROP_SHARED_DATA) and read back the
way ``backdrop eval`` reads them:

- **composite**: portraits-soft people over backgrounds/ (``backdrop eval --composite``): colour
  error (/255) of the composites over light #f0f0f0 and dark #101010, in the edge band and over the
  whole frame, and the alpha MAD (x1e3);
- **sliding clip**: one portrait sliding across a still background, 60 frames, 640x360, exact
  per-frame truth (``evaluate.synthetic.sliding_clip``, seed 0): MAD, dtSSD, flicker;
- **green screen**: every portrait over an unevenly lit, noisy green screen with spill
  (``evaluate.synthetic.green_screen_set``, seed 0): MAD, and the dark edge-band colour error
  against the clean (unspilled) person.

Configurations: ``raw`` (``PipelineOptions.raw()``) and ``default`` (``PipelineOptions()``), or any
``--config NAME:field=value,...`` (fields of PipelineOptions over the defaults; ``NAME:raw,...``
starts from raw), the grammar of ``benchmarks/quality.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import differences, log, parse_config, shared_root  # noqa: E402

from backdrop import Pipeline  # noqa: E402
from backdrop.errors import BackdropError  # noqa: E402
from backdrop.evaluate import (evaluate_composite, evaluate_composite_cases, evaluate_images,  # noqa: E402
                               evaluate_sequence, green_screen_set, json_safe, sliding_clip,
                               write_green_screen_set, write_sliding_clip)

COLUMNS = [  # (key, header, digits)
    ("comp_light_band", "band light", 2), ("comp_dark_band", "band dark", 2),
    ("comp_light_frame", "frame light", 3), ("comp_dark_frame", "frame dark", 3), ("comp_mad", "comp MAD", 2),
    ("slide_mad", "slide MAD", 2), ("slide_dtssd", "slide dtSSD", 3), ("slide_flicker", "slide flicker", 3),
    ("gs_mad", "GS MAD", 2), ("gs_dark_band", "GS band dark", 2),
]


def build_sets(root: Path, tmp: Path, limit: int | None, frames: int) -> dict:
    images, masks, bgs = root / "portraits-soft" / "images", root / "portraits-soft" / "masks", root / "backgrounds"
    t0 = time.perf_counter()
    clip = sliding_clip(images, masks, bgs, frames=frames, seed=0)
    slide = write_sliding_clip(clip, tmp / "slide")
    gs = green_screen_set(images, masks, limit=limit, seed=0)
    green = write_green_screen_set(gs, tmp / "green")
    log(f"built the sliding clip ({clip.person} over {clip.background}, {len(clip.frames)} frames) and "
        f"{len(gs.items)} green-screen images in {time.perf_counter() - t0:.0f} s")
    return {"images": images, "masks": masks, "backgrounds": bgs, "slide": slide, "green": green,
            "green_cases": gs.cases(), "slide_person": clip.person, "slide_background": clip.background}


def run_config(name: str, opts, sets: dict, limit: int | None) -> dict:
    pipe = Pipeline(background="matte", options=replace(opts, quiet=True))
    out: dict = {}
    try:
        t0 = time.perf_counter()
        s = evaluate_composite(sets["backgrounds"], sets["images"], sets["masks"], pipeline=pipe, limit=limit).summary
        out.update(comp_count=s["count"], comp_mad=s["mad"], comp_grad=s["grad"],
                   **{f"comp_{c}_{p}": s[f"{c}_{p}"] for c in ("light", "dark") for p in ("band", "frame")})
        s = evaluate_sequence(sets["slide"]["frames"], sets["slide"]["masks"], pipeline=pipe).summary
        out.update(slide_count=s["count"], slide_mad=s["mad"], slide_dtssd=s["dtssd"], slide_flicker=s["flicker"],
                   slide_iou=s["iou"])
        s = evaluate_images(sets["green"]["images"], sets["green"]["masks"], pipeline=pipe).summary
        out.update(gs_count=s["count"], gs_mad=s["mad"], gs_iou=s["iou"])
        s = evaluate_composite_cases(sets["green_cases"], pipeline=pipe).summary
        out.update(gs_dark_band=s["dark_band"], gs_light_band=s["light_band"])
        log(f"{name:>10}: band dark {out['comp_dark_band']:.2f}  slide dtSSD {out['slide_dtssd']:.3f}  "
            f"GS MAD {out['gs_mad']:.2f}  ({time.perf_counter() - t0:.0f} s)")
    finally:
        pipe.close()
    return out


def fmt(v, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def markdown(results: dict, configs: dict, sets: dict, loads: tuple[str, str]) -> str:
    first = next(iter(results.values()))
    lines = ["| config | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(fmt(r.get(k), d) for k, _, d in COLUMNS) + " |")
    lines += ["",
              f"composite: {first['comp_count']} portraits-soft people over backgrounds/; colour error /255 "
              "(band: true alpha in (0.02, 0.98) or a hard step, dilated 3 px; frame: every pixel); MAD x1e3.",
              f"slide: {first['slide_count']} frames 640x360, {sets['slide_person']} over "
              f"{sets['slide_background']} (seed 0). GS: {first['gs_count']} green-screen images (seed 0); "
              "GS band dark: edge-band colour error over #101010 against the clean (unspilled) person.",
              "", "| config | differs from today's defaults |", "|---|---|"]
    lines += [f"| {n} | {differences(o)} |" for n, o in configs.items()]
    lines += ["", f"load average before: {loads[0]}; after: {loads[1]}"]
    return "\n".join(lines) + "\n"


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", default=None, metavar="NAME[:field=value,...]",
                    help="configuration to run (repeatable; default: raw and default)")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="first N portraits (composite, green screen)")
    ap.add_argument("--frames", type=int, default=60, metavar="N", help="frames of the sliding clip (default 60)")
    ap.add_argument("--model", default=None, help="model for every configuration (default: the default)")
    ap.add_argument("--out", default=None, metavar="FILE.md", help="also write the table here")
    ap.add_argument("--json", action="store_true", help="print every number as JSON on stdout")
    args = ap.parse_args(argv)
    root = shared_root()
    if not (root / "portraits-soft").is_dir() or not (root / "backgrounds").is_dir():
        raise SystemExit(f"composite.py: shared data not found at {root} (set BACKDROP_SHARED_DATA)")
    configs = dict(parse_config(c, args.model) for c in (args.config or ["raw", "default"]))
    before = loadavg()
    t0 = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="backdrop-composite-") as tmp:
        try:
            sets = build_sets(root, Path(tmp), args.limit, args.frames)
            for name, opts in configs.items():
                results[name] = run_config(name, opts, sets, args.limit)
        except BackdropError as exc:
            raise SystemExit(f"composite.py: {exc}") from None
    log(f"done in {time.perf_counter() - t0:.0f} s")
    table = markdown(results, configs, sets, (before, loadavg()))
    if args.out:
        Path(args.out).write_text(table)
    if args.json:
        data = {"configs": {n: asdict(o) for n, o in configs.items()}, "results": results,
                "slide": {"person": sets["slide_person"], "background": sets["slide_background"]},
                "loadavg": [before, loadavg()]}
        json.dump(json_safe(data), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
