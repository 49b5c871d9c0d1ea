"""Whole bodies and groups with true soft alpha: people-rgba composites, several configurations.

    python benchmarks/people.py                                  # default vs raw
    python benchmarks/people.py --config "rvm:model=rvm" --json  # any PipelineOptions fields
    PYTHONPATH=/path/to/old/src python benchmarks/people.py      # the same cases on another checkout

The three RGBA people of ``../shared/data/people-rgba`` (a group of five full bodies, two single
people with raised arms; generated images, real soft alpha) are placed over every person-free
photo of ``backgrounds/`` and ``backgrounds-extra/`` at 1280x720, in three layouts that the
selfie network alone finds hard: ``small`` (the person a third of the frame high, off centre),
``large`` (nine tenths of it) and ``turned`` (lying on their side, rotated 90 degrees; our own
held-out variant, never tuned on). ``F`` is the RGBA image's own colour, so the true composite
over any new background is exact. Scored like ``backdrop eval --composite``: IoU, dataset IoU,
boundary F, alpha MAD (x1e3), and the colour error (/255) over light and dark new backgrounds in
the edge band and over the frame. Only APIs that every version has are used, so the same cases run
on an older checkout for a before/after in one sitting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from quality import log, parse_config, shared_root  # noqa: E402

SIZE = (1280, 720)
LAYOUTS = {"small": (0.34, 0.72, 0.0), "large": (0.9, 0.5, 0.0), "turned": (0.55, 0.5, 90.0)}


def load_people(root: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    from backdrop.io.image import read_image  # noqa: F401 (the package must import)
    from PIL import Image

    out = []
    for path in sorted((root / "people-rgba").glob("*.png")):
        rgba = np.asarray(Image.open(path).convert("RGBA"))
        ys, xs = np.nonzero(rgba[..., 3] > 8)
        crop = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        out.append((path.stem, crop[..., :3].copy(), crop[..., 3].astype(np.float32) / 255.0))
    return out


def place(fg: np.ndarray, alpha: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """The person at ``layout`` in a SIZE frame: (F, alpha), F zero where alpha is."""
    height, centre_x, angle = LAYOUTS[layout]
    if angle:
        k = int(angle // 90) % 4
        fg, alpha = np.ascontiguousarray(np.rot90(fg, k)), np.ascontiguousarray(np.rot90(alpha, k))
    w, h = SIZE
    s = min(height * h / alpha.shape[0], 0.95 * w / alpha.shape[1])
    nw, nh = max(1, round(alpha.shape[1] * s)), max(1, round(alpha.shape[0] * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small_f, small_a = cv2.resize(fg, (nw, nh), interpolation=interp), cv2.resize(alpha, (nw, nh), interpolation=interp)
    x0 = int(np.clip(centre_x * w - nw / 2, 0, w - nw))
    y0 = h - nh if not angle else (h - nh) // 2  # standing people stand on the frame's bottom
    F = np.zeros((h, w, 3), np.uint8)
    A = np.zeros((h, w), np.float32)
    F[y0:y0 + nh, x0:x0 + nw] = small_f
    A[y0:y0 + nh, x0:x0 + nw] = np.clip(small_a, 0, 1)
    return F, np.round(A * 255) / 255


def cases(root: Path, limit: int | None = None):
    from backdrop.evaluate.composite import CompositeCase
    from backdrop.evaluate.sources import fit_background, load_backgrounds
    from backdrop.metrics import true_composite

    backgrounds = load_backgrounds(root / "backgrounds") + load_backgrounds(root / "backgrounds-extra")
    people = load_people(root)
    n = 0
    for layout in LAYOUTS:
        for i, (bg_name, bg) in enumerate(backgrounds):
            name, fg, alpha = people[i % len(people)]
            F, A = place(fg, alpha, layout)
            image = true_composite(F, A, fit_background(bg, SIZE[1], SIZE[0]))
            yield layout, CompositeCase(f"{layout}-{name}-{bg_name}", image, A, F, bg_name)
            n += 1
            if limit and n >= limit:
                return


def run(name: str, opts, root: Path, limit: int | None) -> dict:
    from backdrop.evaluate.composite import evaluate_composite_cases

    out = {}
    by_layout: dict[str, list] = {}
    for layout, case in cases(root, limit):
        by_layout.setdefault(layout, []).append(case)
    for layout, group in by_layout.items():
        t0 = time.perf_counter()
        report = evaluate_composite_cases(group, options=replace(opts, quiet=True))
        s = report.summary
        out[layout] = {k: s.get(k) for k in ("count", "iou", "dataset_iou", "boundary_f", "mad", "light_band",
                                              "dark_band", "light_frame", "dark_frame")}
        log(f"{name:>10} {layout:<7} IoU {s['iou']:.3f}  MAD {s['mad']:.1f}  dark band {s['dark_band']:.2f}"
            f"  ({time.perf_counter() - t0:.0f} s)")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", action="append", default=None, metavar="NAME[:field=value,...]")
    ap.add_argument("--limit", type=int, default=None, help="first N cases")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    root = shared_root()
    results = {}
    for text in args.config or ["default", "raw"]:
        name, opts = parse_config(text)
        results[name] = run(name, opts, root, args.limit)
    if args.json:
        print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
