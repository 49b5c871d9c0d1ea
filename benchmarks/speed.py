"""The standard speed set: runs ``backdrop bench`` configurations and writes the speed section
of ``docs/benchmarks.md`` (between ``<!-- BEGIN speed -->`` and ``<!-- END speed -->``; the rest
of the file is kept).

    python benchmarks/speed.py                 # full set (several minutes on a laptop)
    python benchmarks/speed.py --quick         # 480p and 720p only, fewer frames
    python benchmarks/speed.py --json-out speed.json --no-doc

The set (all on real people: shared clips scaled to size, see ../shared/data/README.md):
  * default pipeline, blur background, office-desk clip at 480p / 720p / 1080p / 4K: per-stage
    ms, end-to-end vs bare transcode, live latency, peak RSS;
  * default pipeline on the talking-room clip (with audio) as given and scaled to 720p / 1080p,
    so the audio copy is part of both file-to-file runs;
  * the raw network (``--raw``) at 720p / 1080p, and a solid-colour background at 720p, to show
    what the matte stages and the blur cost.

Absolute numbers are only meaningful with the machine line printed above them; re-run on a quiet
machine (nothing else using the CPU) before quoting them.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from backdrop.bench import (BenchConfig, describe_machine, order_stages, parse_size,  # noqa: E402
                            run_bench, shared_data_dir, update_markdown_section)
from backdrop.engine import PipelineOptions  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def standard_set(quick: bool = False, frames: int | None = None) -> list[tuple[str, BenchConfig]]:
    """(group, config) pairs of the standard set."""
    n = frames or (30 if quick else 120)
    sizes = ["480p", "720p"] if quick else ["480p", "720p", "1080p", "4k"]
    big = ["720p"] if quick else ["720p", "1080p"]
    office = shared_data_dir() / "clips" / "office-desk-960x540.mp4"
    talking = shared_data_dir() / "clips" / "talking-room-512x480.mp4"
    default = PipelineOptions(quiet=True)
    raw = PipelineOptions.raw(quiet=True)
    sets = [("default", BenchConfig(clip=office if office.exists() else None,
                                    sizes=[parse_size(s) for s in sizes], frames=n, options=default))]
    if talking.exists():
        sets.append(("default, audio", BenchConfig(clip=talking, frames=n * 2, options=default, memory=False)))
        sets.append(("default, audio", BenchConfig(clip=talking, sizes=[parse_size(s) for s in big], frames=n,
                                                   options=default, memory=False)))
    sets.append(("raw", BenchConfig(clip=office if office.exists() else None, sizes=[parse_size(s) for s in big],
                                    frames=n, options=raw, live=True, memory=False)))
    sets.append(("default, colour", BenchConfig(clip=office if office.exists() else None,
                                                sizes=[parse_size("720p")], frames=n, options=default,
                                                background="#00b140", memory=False)))
    return sets


def run(quick: bool = False, frames: int | None = None, repeat: int | None = None, verbose: bool = True) -> dict:
    results = []
    for group, cfg in standard_set(quick, frames):
        cfg.repeat = repeat or (1 if quick else 2)
        say = (lambda m: print(f"speed: [{group}] {m}", file=sys.stderr, flush=True)) if verbose else (lambda m: None)
        r = run_bench(cfg, say=say)
        for one in r["runs"]:
            one["group"] = group
            one["pipeline"] = "raw" if group == "raw" else "default"
            one["background"] = r["config"]["background"]
        results.append(r)
    first = results[0]
    return {"machine": first["machine"], "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": _commit(), "quick": quick, "crf": first["config"]["crf"], "preset": first["config"]["preset"],
            "repeat": first["config"]["repeat"], "runs": [one for r in results for one in r["runs"]],
            "seconds": sum(r["seconds"] for r in results)}


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def _clip(run: dict) -> str:
    """Short name of the clip a run was made from (``office-desk``, ``talking-room``, ``sample``)."""
    src = run["source"].split(",")[0].strip()
    if src.startswith("the bundled sample"):
        return "sample"
    return src.rsplit(".", 1)[0].rsplit("-", 1)[0] if "-" in src else src


def _f(x, nd=1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(res: dict) -> str:
    m = res["machine"]
    runs = res["runs"]
    lines = [
        "## Speed (`backdrop bench`)",
        "",
        f"Taken {res['date']}" + (f" at commit {res['commit']}" if res.get("commit") else "") + " on:",
        f"**{describe_machine(m)}** ({m['os']}; load average at the start "
        f"{', '.join(str(x) for x in m['load_avg']) if m.get('load_avg') else 'unknown'}).",
        "",
        f"Model `selfie` (MediaPipe, LiteRT), H.264 CRF {res['crf']} preset {res['preset']} for both file-to-file "
        f"runs, best of {res['repeat']}. Regenerate with `python benchmarks/run_all.py` (or "
        "`python benchmarks/speed.py`); one configuration with `backdrop bench [CLIP] --sizes 720p --json`. "
        "Absolute numbers belong to this machine; the **ratio** (end-to-end frames/s over the frames/s of a bare "
        "transcode of the same clip, same reader/writer/CRF/preset/audio copy, same run) is the number that "
        "travels.",
        "",
    ]
    load = (m.get("load_avg") or [0.0])[0]
    if load > 0.5 * (m.get("usable_cpus") or 1):
        lines += [f"> **Noisy machine:** the load average at the start was {load:.1f} on {m['usable_cpus']} usable "
                  "CPUs, so other work competed with these runs. Treat the absolute numbers (and, less so, the "
                  "ratios) as indicative; re-run on an idle machine before quoting them.", ""]
    lines += [
        "### End-to-end `backdrop video` vs bare transcode",
        "",
        "| run | clip | pipeline | background | size | frames | audio | e2e frames/s | bare transcode frames/s "
        "| ratio | live p50 / p95 ms | peak RSS MB |",
        "|---|---|---|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        live = r.get("live")
        mem = r.get("memory")
        lines.append(
            f"| {r['name']} | {_clip(r)} | {r['pipeline']} | {r['background']} | {r['width']}x{r['height']} | {r['frames']} "
            f"| {'yes' if r['has_audio'] else 'no'} | {_f(r['e2e']['fps'])} | {_f(r['transcode']['fps'])} "
            f"| **{_f(r['ratio'], 2)}** | {(_f(live['p50_ms']) + ' / ' + _f(live['p95_ms'])) if live else '-'} "
            f"| {_f(mem.get('peak_mb'), 0) if mem else '-'} |")
    lines += ["", "Peak RSS: high-water mark of a fresh process running the end-to-end job (model, decoder, "
              "encoder and frames included). Live latency: a `Pipeline(live=True)`, time from a frame entering "
              "it to its composite leaving it (no decode/encode).", ""]
    default = [r for r in runs if r["group"] == "default"]
    if default:
        stages = list(order_stages({s: None for r in default for s in r["stages"]}))
        lines += ["### Per-stage ms/frame, default pipeline, blur background (median / p95)", "",
                  "| stage | " + " | ".join(f"{r['name']} ({r['width']}x{r['height']})" for r in default) + " |",
                  "|---|" + "---:|" * len(default)]
        notes = False
        for s in stages:
            cells = []
            for r in default:
                st = r["stages"].get(s)
                if st is None:
                    cells.append("-")
                    continue
                cell = f"{_f(st['median'], 2)} / {_f(st['p95'], 2)}"
                if s != "decode" and st["n"] != r["frames"]:
                    cell += f" ({st['n']} calls, {_f(st['per_frame'], 2)}/frame)"
                    notes = True
                cells.append(cell)
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("| **end-to-end, ms/frame** | " + " | ".join(_f(r["e2e"]["ms_per_frame"], 1) for r in default)
                     + " |")
        lines.append("| bare transcode, ms/frame | "
                     + " | ".join(_f(r["transcode"]["ms_per_frame"], 1) for r in default) + " |")
        lines += ["", "`decode` is timed on the reader alone (demux, decode, and the frame as the job reads it: "
                  "the decoder's YUV planes for an RGB output); the other rows are "
                  "what the pipeline's stage timer recorded during the end-to-end run"
                  + ("; a stage that does not run exactly once a frame shows its calls and its total cost spread per "
                     "frame"
                     if notes else "") + ".", ""]
    pairs = [(d, r) for d in runs if d["group"] == "default" for r in runs
             if r["group"] == "raw" and r["name"] == d["name"]]
    if pairs:
        lines += ["### What the matte stages cost (same clip, same sitting, blur background)", "",
                  "| size | raw network, ms/frame | default pipeline, ms/frame | default minus raw, ms/frame "
                  "| bare transcode, ms/frame |",
                  "|---|---:|---:|---:|---:|"]
        for d, r in pairs:
            lines.append(f"| {d['name']} | {_f(r['e2e']['ms_per_frame'])} | {_f(d['e2e']['ms_per_frame'])} "
                         f"| {_f(d['e2e']['ms_per_frame'] - r['e2e']['ms_per_frame'])} "
                         f"| {_f(d['transcode']['ms_per_frame'])} |")
        lines += ["", "Both columns are whole `backdrop video` runs (decode to encode) on the office-desk clip; "
                  "the default pipeline can be cheaper than the raw network because it skips inference on "
                  "still frames and runs it on a crop.", ""]
    target = [r for r in runs if r["group"] == "default" and r["name"] == "720p"]
    if target:
        t = target[0]
        ok = t["ratio"] is not None and t["ratio"] >= 0.6
        lines += [f"Issue 4 target (720p, all default stages, at least 0.6x the bare transcode): "
                  f"**{_f(t['ratio'], 2)}x**, {'met' if ok else 'not met'} on this machine.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="480p and 720p, 30 frames, one repeat")
    ap.add_argument("--frames", type=int, default=None, help="frames per run (default 120; 30 with --quick)")
    ap.add_argument("--repeat", type=int, default=None, help="best of N (default 2; 1 with --quick)")
    ap.add_argument("--doc", type=Path, default=DOC, help="markdown file to update (default docs/benchmarks.md)")
    ap.add_argument("--no-doc", action="store_true", help="do not write the markdown")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the raw results as JSON here")
    args = ap.parse_args(argv)
    res = run(args.quick, args.frames, args.repeat)
    if args.json_out:
        args.json_out.write_text(json.dumps(res, indent=2))
    md = markdown(res)
    if not args.no_doc:
        update_markdown_section(args.doc, "speed", md)
        print(f"speed: wrote the speed section of {args.doc} ({res['seconds']:.0f} s of benchmarks)", file=sys.stderr)
    else:
        print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
