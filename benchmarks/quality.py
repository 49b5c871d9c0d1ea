"""Accuracy and stability of several pipeline configurations on every shared data set, in one run.

    python benchmarks/quality.py                          # raw vs default -> docs/quality-table.md
    python benchmarks/quality.py --limit 10 --out /tmp/q.md     # a quick look
    python benchmarks/quality.py --config "no-delay:delay=False" --json > q.json

Sets (from ../shared/data, or BACKDROP_SHARED_DATA): portraits-removebg and portraits-soft as
image sets; clips-gt/lucia and clips-gt/hike as sequences with per-frame truth (image metrics
plus dtSSD and flicker); every video in clips/ for flicker. Configurations: ``raw``
(``PipelineOptions.raw()``, the bare network) and ``default`` (``PipelineOptions()``, whatever
the defaults are today), plus any ``--config NAME:field=value,...`` (fields of PipelineOptions
over the defaults; ``NAME:raw,field=value`` starts from raw). The script reads the fields of
PipelineOptions at run time, so stages added later are covered without changes here.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from backdrop import Pipeline, PipelineOptions  # noqa: E402
from backdrop.errors import BackdropError  # noqa: E402
from backdrop.evaluate import evaluate_images, evaluate_sequence  # noqa: E402

IMAGE_SETS = ["portraits-removebg", "portraits-soft"]
SEQUENCE_SETS = ["clips-gt/lucia", "clips-gt/hike"]


def shared_root() -> Path:
    return Path(os.environ.get("BACKDROP_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_config(text: str, model: str | None = None) -> tuple[str, PipelineOptions]:
    """``raw`` | ``default`` | ``NAME:[raw,]field=value,...`` -> (name, options). ``default`` is
    what ``model`` prefers (``PipelineOptions.for_model``); ``raw`` is the bare model."""
    model = model or PipelineOptions().model
    if text == "raw":
        return "raw", PipelineOptions.raw(model=model)
    if text == "default":
        return "default", PipelineOptions.for_model(model)
    name, _, spec = text.partition(":")
    base = PipelineOptions.for_model(model)
    overrides = {}
    known = {f.name for f in fields(PipelineOptions)}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        if part == "raw":
            base = PipelineOptions.raw(model=model)
            continue
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in known:
            raise SystemExit(f"quality.py: bad --config part {part!r} (fields: {', '.join(sorted(known))})")
        try:
            overrides[key] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            overrides[key] = value.strip()
    return name or text, replace(base, **overrides).validate()


def differences(opts: PipelineOptions) -> str:
    """The fields where ``opts`` differs from today's defaults, as ``k=v`` (``-`` if none)."""
    default = asdict(PipelineOptions())
    diff = [f"{k}={v}" for k, v in asdict(opts).items() if default.get(k) != v and k != "quiet"]
    return ", ".join(diff) or "-"


def run_config(name: str, opts: PipelineOptions, root: Path, limit: int | None) -> dict:
    """Every set under one configuration: {set name: summary dict}."""
    pipe = Pipeline(background="matte", options=replace(opts, quiet=True))
    results: dict[str, dict] = {}
    try:
        for s in IMAGE_SETS:
            t0 = time.perf_counter()
            r = evaluate_images(root / s / "images", root / s / "masks", pipeline=pipe, limit=limit)
            results[s] = r.summary
            log(f"{name:>10} {s:<34} {r.summary['count']:>4} images  IoU {r.summary['iou']:.4f}  "
                f"({time.perf_counter() - t0:.0f} s)")
        for s in SEQUENCE_SETS:
            t0 = time.perf_counter()
            r = evaluate_sequence(root / s / "frames", root / s / "masks", pipeline=pipe, limit=limit)
            results[s] = r.summary
            log(f"{name:>10} {s:<34} {r.summary['count']:>4} frames  IoU {r.summary['iou']:.4f}  "
                f"dtSSD {r.summary['dtssd']:.3f}  ({time.perf_counter() - t0:.0f} s)")
        for clip in sorted((root / "clips").glob("*.mp4")):
            t0 = time.perf_counter()
            r = evaluate_sequence(clip, None, pipeline=pipe, limit=limit)
            results[f"clips/{clip.name}"] = r.summary
            log(f"{name:>10} {'clips/' + clip.name:<34} {r.summary['count']:>4} frames  flicker "
                f"{r.summary['flicker']:.3f}  ({time.perf_counter() - t0:.0f} s)")
    finally:
        pipe.close()
    return results


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def f(v, digits=4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}"


def markdown(results: dict[str, dict[str, dict]], configs: dict[str, PipelineOptions], limit: int | None) -> str:
    names = list(results)
    first = results[names[0]]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    model = asdict(next(iter(configs.values())))["model"]
    out = ["# Quality: accuracy and stability per data set",
           "",
           f"Generated by `python benchmarks/quality.py` on {time.strftime('%Y-%m-%d')}"
           + (f" at commit {commit} (plus uncommitted changes, if any)" if commit else "")
           + f"; model `{model}`" + (f"; **first {limit} items per set only**" if limit else "") + ".",
           "Data: `../shared/data` (see its README). Metric definitions: `src/backdrop/metrics/`.",
           "Higher is better for IoU and boundary F; lower for everything else.",
           "",
           "| config | differs from today's defaults |",
           "|---|---|"]
    out += [f"| {n} | {differences(o)} |" for n, o in configs.items()]
    out += ["",
            "## Image sets (each photo on its own)",
            "",
            "Boundary F within 3 px. MAD (x1e3) and Grad (/1e3) are given where the truth is a soft alpha;",
            "against binary masks they mostly measure how soft the predicted edge is.",
            "",
            "| set | config | n | mean IoU | dataset IoU | boundary F | MAD | Grad |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in IMAGE_SETS:
        for n in names:
            r = results[n][s]
            soft = r.get("soft_truth")
            out.append(f"| {s} | {n} | {r['count']} | {f(r['iou'])} | {f(r['dataset_iou'])} | "
                       f"{f(r['boundary_f'])} | {f(r['mad'], 2) if soft else '-'} | "
                       f"{f(r['grad'], 2) if soft else '-'} |")
    out += ["",
            "## Clips with per-frame truth (DAVIS 2016, people about 5 % of the frame)",
            "",
            "| clip | config | frames | mean IoU | dataset IoU | boundary F | dtSSD | flicker x1e3 | static share |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in SEQUENCE_SETS:
        for n in names:
            r = results[n][s]
            out.append(f"| {s} | {n} | {r['count']} | {f(r['iou'])} | {f(r['dataset_iou'])} | "
                       f"{f(r['boundary_f'])} | {f(r['dtssd'], 3)} | {f(r['flicker'], 3)} | "
                       f"{f(r['static_fraction'], 3)} |")
    out += ["",
            "## Clips without truth: flicker",
            "",
            "Flicker: mean absolute matte change (x1e3) between consecutive frames where the picture",
            "did not change; static share: how much of the frame that was.",
            "",
            "| clip | frames | " + " | ".join(f"{n} flicker" for n in names) + " | static share |",
            "|---|---:|" + "---:|" * len(names) + "---:|"]
    for s in [k for k in first if k.startswith("clips/")]:
        row = [s.removeprefix("clips/"), str(first[s]["count"])]
        row += [f(results[n][s]["flicker"], 3) for n in names]
        row.append(f(first[s]["static_fraction"], 3))
        out.append("| " + " | ".join(row) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "docs" / "quality-table.md"), help="markdown output path")
    ap.add_argument("--json", action="store_true", help="print every summary as JSON on stdout")
    ap.add_argument("--limit", type=int, default=None, metavar="N", help="first N images/frames per set")
    ap.add_argument("--config", action="append", default=None, metavar="NAME[:field=value,...]",
                    help="configuration to run (repeatable; default: raw and default)")
    ap.add_argument("--model", default=None, help="model for every configuration (default: the default)")
    args = ap.parse_args(argv)
    root = shared_root()
    if not (root / "portraits-removebg").is_dir():
        raise SystemExit(f"quality.py: shared data not found at {root} (set BACKDROP_SHARED_DATA)")
    configs = dict(parse_config(c, args.model) for c in (args.config or ["raw", "default"]))
    results = {}
    t0 = time.perf_counter()
    try:
        for name, opts in configs.items():
            results[name] = run_config(name, opts, root, args.limit)
    except BackdropError as exc:
        raise SystemExit(f"quality.py: {exc}") from None
    log(f"done in {time.perf_counter() - t0:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown(results, configs, args.limit))
    log(f"wrote {out}")
    if args.json:
        from backdrop.evaluate import json_safe

        data = {"configs": {n: asdict(o) for n, o in configs.items()}, "limit": args.limit,
                "results": results}
        json.dump(json_safe(data), sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
