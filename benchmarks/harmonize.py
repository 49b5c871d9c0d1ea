"""Relighting measured as image harmonization, and the flicker of the correction on every shared clip.

    python benchmarks/harmonize.py                      # fMSE / PSNR tables: all, tuning, held-out
    python benchmarks/harmonize.py --flicker            # + every shared clip (first 150 frames each)
    python benchmarks/harmonize.py --no-table --flicker --frames 60   # the flicker alone, shorter
    python benchmarks/harmonize.py --learned runs/relight/relight.json   # + the learned estimate
    python benchmarks/harmonize.py --tune lift_below=-1.5,-1.0 lift_gain=1.5,2.0   # a grid, tuning photos only
    python benchmarks/harmonize.py --cost               # what relight on costs a 720p file job (ms/frame)

Photos: portraits-soft (20) and portraits-removebg (290) with their true mattes, each perturbed
five ways and scored unperturbed (``backdrop eval --harmonize``, ``evaluate/harmonize.py``).
``--tune`` searches the ``RelightConstants`` named (every combination) on the *tuning* photos at
160 px (the held-out 30 % never take part) and prints the objective: the mean fMSE of the
perturbed inputs plus that of the unperturbed ones (a correction that damages good photos pays).

Flicker: the default pipeline (relight on) composites each clip over a bright photo
(``backgrounds-extra/unsplash-paysage_2.jpg``), as shot and made dark and noisy (2 stops down,
3 levels of noise: the lift works); per frame the correction the stage applied is put through a
fixed palette of 12 colours (greys and skin tones) and the frame-to-frame change of the corrected
palette is the flicker (levels: mean and largest step), the range over the clip its drift, from the
first frame with a person (that frame takes its correction at once, as on a new background).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import log, shared_root  # noqa: E402

from backdrop import Pipeline, PipelineOptions  # noqa: E402
from backdrop.compose.lowlight import lift_table  # noqa: E402
from backdrop.compose.relight import Look, apply_look  # noqa: E402
from backdrop.compose.relight_estimate import RelightConstants, relight_once  # noqa: E402
from backdrop.evaluate.harmonize import (fmse, format_harmonize_report, harmonize_cases, held_out,  # noqa: E402
                                         methods, score_cases, summarize)
from backdrop.evaluate.perturb import perturb_person  # noqa: E402
from backdrop.evaluate.report import EvalReport  # noqa: E402
from backdrop.io.image import read_image  # noqa: E402
from backdrop.io.video import VideoReader  # noqa: E402

SETS = ("portraits-soft", "portraits-removebg")
PALETTE = np.uint8([[[g, g, g] for g in (32, 64, 96, 128, 160, 192, 224)]
                    + [[224, 172, 150], [198, 134, 106], [141, 85, 60], [92, 56, 40], [240, 200, 180]]])
TUNE_SIDE = 160


def people(root: Path, part: tuple[int, int] = (0, 1)):
    """(name, photo, alpha) of both sets; names are ``SET/stem``, as ``backdrop eval --harmonize``
    names them (``evaluate.harmonize.named_people``: the held-out split is a hash of the name). ``part`` (k, n): every n-th pair from
    the k-th, chosen before any is read (one share of a parallel run)."""
    from backdrop.evaluate.sources import fit_truth, match_pairs, read_truth

    i = 0
    for name in SETS:
        pairs, _, _ = match_pairs(root / name / "images", root / name / "masks")
        for stem, img_path, gt_path in pairs:
            i += 1
            if (i - 1) % part[1] != part[0]:
                continue
            image = read_image(img_path)
            yield f"{name}/{stem}", image, fit_truth(read_truth(gt_path)[0], image.shape, gt_path.name)


def runs_of(learned: str | None) -> dict:
    """The four methods, the stage with the classical white-balance look it had before tuning
    (warm 0.5, green 0.3: what that look does) and, with ``learned``, the stage with the learned look."""
    runs = methods()
    wb = replace(RelightConstants(), gain_warm=0.5, gain_green=0.3)
    runs["relight_wb_look"] = lambda image, alpha: blend(image, relight_once(image, alpha, image, wb), alpha)
    if learned:
        from backdrop.compose.relight_learned import LearnedLook

        estimator = LearnedLook(learned)
        runs["relight_learned"] = lambda image, alpha: blend(image, relight_once(image, alpha, image,
                                                                                 estimator=estimator), alpha)
    return runs


def _share(job: tuple[str, str | None, int, int]) -> list[dict]:
    root, learned, k, n = job
    return score_cases(harmonize_cases(people(Path(root), (k, n))), runs_of(learned))


def table(root: Path, learned: str | None, jobs: int = 2) -> EvalReport:
    """Every photo under every method, in ``jobs`` processes (each a share of the photos)."""
    from multiprocessing import get_context

    t0 = time.perf_counter()
    with get_context("spawn").Pool(jobs) as pool:
        rows = [r for part in pool.map(_share, [(str(root), learned, k, jobs) for k in range(jobs)]) for r in part]
    log(f"{len(rows)} scores in {time.perf_counter() - t0:.0f} s ({jobs} processes)")
    return EvalReport("harmonize", " + ".join(SETS), "their masks", summarize(rows), rows)


def blend(image, fg, alpha):
    a = alpha[..., None]
    return np.clip(a * fg.astype(np.float32) + (1 - a) * image + 0.5, 0, 255).astype(np.uint8)


def tune(root: Path, grid: dict[str, list[float]]) -> list[dict]:
    from backdrop.compose.lowlight import person_noise
    from backdrop.compose.relight_estimate import person_box

    cases = []
    for c in harmonize_cases(p for p in people(root) if not held_out(p[0])):
        h, w = c.photo.shape[:2]
        k = min(1.0, TUNE_SIDE / max(h, w))
        size = (max(1, round(w * k)), max(1, round(h * k)))
        noise = person_noise(c.image, c.alpha, person_box(c.alpha))  # at the photo's own resolution
        cases.append((c.kind, *(cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (c.image, c.photo, c.alpha)),
                      noise))
    log(f"tuning on {sum(k == 'none' for k, *_ in cases)} photos")
    out = []
    for values in itertools.product(*grid.values()):
        c = replace(RelightConstants(), **dict(zip(grid, values)))
        per: dict[str, list] = {}
        for kind, image, photo, alpha, noise in cases:
            per.setdefault(kind, []).append(fmse(blend(image, relight_once(image, alpha, image, c, noise=noise), alpha),
                                                 photo, alpha))
        perturbed = float(np.mean([v for k, vs in per.items() if k != "none" for v in vs]))
        row = {**dict(zip(grid, values)), "perturbed": perturbed, "unperturbed": float(np.mean(per["none"])),
               "objective": perturbed + float(np.mean(per["none"]))}
        log(json.dumps({k: round(v, 3) for k, v in row.items()}))
        out.append(row)
    return sorted(out, key=lambda r: r["objective"])


def clips(root: Path) -> list[Path]:
    return (sorted((root / "clips").glob("*.mp4")) + sorted((root / "clips-extra").glob("*.mp4"))
            + sorted((root / "clips-extra" / "asl").glob("*.mkv")))


def palette_through(look: Look, gain: float, pivot: float) -> np.ndarray:
    lifted = cv2.LUT(PALETTE, lift_table(gain)) if gain > 1.001 else PALETTE
    return apply_look(lifted, look, pivot).astype(np.float32)


def flicker(root: Path, frames: int) -> list[dict]:
    from backdrop.stages.relight import RelightStage

    beach = read_image(root / "backgrounds-extra" / "unsplash-paysage_2.jpg")
    rows = []
    for path in clips(root):
        for variant in ("as shot", "dark"):
            pipe = Pipeline(background=beach, options=PipelineOptions(quiet=True))
            stage = next(s for s in pipe.stages if isinstance(s, RelightStage))
            rng = np.random.default_rng(0)
            seen, lifts, looks, start = [], [], [], None
            for i, f in enumerate(VideoReader(path)):
                if i >= frames:
                    break
                img = f.image if variant == "as shot" else perturb_person(f.image, "lowlight", -2.0, rng, noise=3.0)
                pipe(img)
                look, gain = stage.applied
                if start is None and stage.log_gain is not None:
                    start = i  # the first frame with a person: the correction is taken at once (not flicker)
                lifts.append(np.log2(gain))
                looks.append(look.vector())
                pivot = float(np.exp2(stage.log_pivot)) if stage.log_pivot is not None else 0.18
                seen.append(palette_through(look, gain, pivot))
            pipe.close()
            seen = np.array(seen[start or 0:])
            steps = np.abs(np.diff(seen, axis=0)).mean(axis=(1, 2, 3)) if len(seen) > 1 else np.zeros(1)
            rows.append({"clip": path.name, "variant": variant, "frames": len(seen),
                         "flicker_mean": float(steps.mean()), "flicker_max": float(steps.max()),
                         "drift": float(np.abs(seen.max(axis=0) - seen.min(axis=0)).mean()),
                         "change": float(np.abs(seen[-1] - PALETTE.astype(np.float32)).mean()),
                         "first_person_frame": start, "lift_stops": float(np.mean(lifts[start or 0:])),
                         "look": np.mean(looks[start or 0:], axis=0).round(3).tolist()})
            log(f"{path.name:>40} {variant:>8}: flicker {rows[-1]['flicker_mean']:.3f} (max "
                f"{rows[-1]['flicker_max']:.3f}) levels/frame, drift {rows[-1]['drift']:.2f}, correction "
                f"{rows[-1]['change']:.1f} (lift {rows[-1]['lift_stops']:.2f} stops, look {rows[-1]['look']})")
    return rows


def cost(root: Path, frames: int, rounds: int = 3) -> dict:
    """ms/frame of the default pipeline (``Pipeline(frame)``, a file job's call) on the 720x1280
    portrait clip over the lake, relight 0 and 1 interleaved in one sitting: with relight on, a
    frame takes the unfused path (the stage looks at the background before the blend)."""
    beach = read_image(root / "backgrounds-extra" / "unsplash-paysage_2.jpg")
    clip = [f.image for i, f in zip(range(frames), VideoReader(root / "clips" / "talking-portrait-720x1280.mp4"))]
    times: dict[float, list[float]] = {0.0: [], 1.0: []}
    for _ in range(rounds):
        for strength in times:
            pipe = Pipeline(background=beach, options=PipelineOptions(relight=strength, quiet=True))
            pipe(clip[0])  # warm-up
            t0 = time.perf_counter()
            for f in clip[1:]:
                pipe(f)
            times[strength].append(1000 * (time.perf_counter() - t0) / (len(clip) - 1))
            pipe.close()
    off, on = float(np.median(times[0.0])), float(np.median(times[1.0]))
    log(f"720x1280, {frames} frames x {rounds} rounds: relight 0 {off:.1f} ms/frame, relight 1 {on:.1f} (x{on / off:.2f})")
    return {"relight_0_ms": off, "relight_1_ms": on, "ratio": on / off, "rounds": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--flicker", action="store_true", help="also the flicker of the correction on every shared clip")
    ap.add_argument("--frames", type=int, default=150, help="frames per clip for --flicker (default 150)")
    ap.add_argument("--learned", metavar="JSON", help="also score a learned estimate (train relight's relight.json)")
    ap.add_argument("--tune", nargs="+", metavar="NAME=V1,V2", help="grid-search RelightConstants on the tuning photos")
    ap.add_argument("--jobs", type=int, default=2, help="processes for the tables (default 2)")
    ap.add_argument("--no-table", action="store_true", help="skip the fMSE / PSNR tables (e.g. --flicker alone)")
    ap.add_argument("--cost", action="store_true", help="only: ms/frame of a 720p file job, relight 0 vs 1")
    ap.add_argument("--json", metavar="FILE", help="write every number as JSON")
    args = ap.parse_args(argv)
    root = shared_root()
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    out: dict = {}
    if args.cost:
        out["cost"] = cost(root, args.frames)
    elif args.tune:
        grid = {k: [float(v) for v in vals.split(",")] for k, _, vals in (t.partition("=") for t in args.tune)}
        out["tune"] = tune(root, grid)
        print(json.dumps(out["tune"][:3], indent=1))
    elif not args.no_table:
        report = table(root, args.learned, args.jobs)
        print(format_harmonize_report(report))
        out["summary"] = report.summary
    if args.flicker:
        out["flicker"] = flicker(root, args.frames)
        worst = max(out["flicker"], key=lambda r: r["flicker_max"])
        print(f"flicker over {len(out['flicker'])} clip runs: mean {np.mean([r['flicker_mean'] for r in out['flicker']]):.3f}"
              f" levels/frame, largest step {worst['flicker_max']:.3f} ({worst['clip']}, {worst['variant']})")
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load0)}; after: {' '.join(load1)}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
