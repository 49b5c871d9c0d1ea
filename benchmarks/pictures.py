"""Side-by-side pictures for docs/quality.md: raw network vs the default pipeline.

Row per input: frame | raw matte | refined matte | raw composite | refined composite.
The astronaut sample (NASA, public domain) is written to docs/img/ and committed; pictures of
the shared photos/clips (real people, evaluation-only licences) go to --local (not committed).

    python benchmarks/pictures.py [--local out/pictures]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

from backdrop import Pipeline, PipelineOptions, load_model
from backdrop.io.image import read_image, write_image
from backdrop.sample import make_background, sample_frames

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def row(seg, frame, crop=None):
    bg = make_background(frame.shape[1], frame.shape[0])
    cells = [frame]
    mattes, comps = [], []
    for opts in (PipelineOptions.raw(), PipelineOptions()):
        p = Pipeline(background=bg, segmenter=seg, options=opts)
        m = p.matte(frame)
        p.reset()
        mattes.append(np.dstack([(m * 255).astype(np.uint8)] * 3))
        comps.append(p(frame))
    cells += mattes + comps
    if crop:
        y0, y1, x0, x1 = crop
        cells = [c[y0:y1, x0:x1] for c in cells]
    return np.hstack(cells)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", default=None, help="also render shared images into this folder")
    args = ap.parse_args()
    seg = load_model("selfie", quiet=True)
    frames = list(sample_frames(60))
    out = REPO / "docs" / "img"
    out.mkdir(parents=True, exist_ok=True)
    write_image(out / "astronaut-raw-vs-default.png", row(seg, frames[30]))
    write_image(out / "astronaut-hair-detail.png", row(seg, frames[30], crop=(0, 200, 150, 450)))
    if args.local:
        loc = Path(args.local)
        loc.mkdir(parents=True, exist_ok=True)
        for f in sorted(glob.glob(str(SHARED / "portraits-soft" / "images" / "*.png")))[:4]:
            write_image(loc / f"soft-{Path(f).stem}.png", row(seg, read_image(Path(f))))
        for clip in ("lucia", "hike"):
            f = sorted(glob.glob(str(SHARED / "clips-gt" / clip / "frames" / "*.jpg")))[20]
            write_image(loc / f"davis-{clip}.png", row(seg, read_image(Path(f))))
    print("wrote", out)


if __name__ == "__main__":
    main()
