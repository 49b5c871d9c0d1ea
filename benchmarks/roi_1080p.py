"""ROI vs full-frame inference on 1080p frames with a small person (DAVIS, upscaled).

The DAVIS people cover about 5% of the frame; scaled to 1920x1080 this is the "small person in
a 1080p frame" case of issue 4. Prints mean IoU per clip for --no-roi and the default pipeline.

    python benchmarks/roi_1080p.py [--frames 40]
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import cv2
import numpy as np

from backdrop import Pipeline, PipelineOptions, load_model
from backdrop.io.image import read_image
from backdrop.metrics.segmentation import IoUAccumulator

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    args = ap.parse_args()
    seg = load_model("selfie", quiet=True)
    print("| clip (1920x1080) | full frame IoU | ROI IoU |")
    print("|---|---:|---:|")
    for clip in ("lucia", "hike"):
        frames = sorted(glob.glob(str(SHARED / "clips-gt" / clip / "frames" / "*.jpg")))[: args.frames]
        masks = sorted(glob.glob(str(SHARED / "clips-gt" / clip / "masks" / "*.png")))[: args.frames]
        imgs = [cv2.resize(read_image(Path(f)), (1920, 1080), interpolation=cv2.INTER_CUBIC) for f in frames]
        gts = [cv2.resize(read_image(Path(m))[..., 0], (1920, 1080), interpolation=cv2.INTER_LINEAR) / 255.0
               for m in masks]
        row = []
        for roi in (False, True):
            p = Pipeline(background="matte", segmenter=seg, options=PipelineOptions(roi=roi))
            acc = IoUAccumulator()
            for (_, m, _), g in zip(p.stream(imgs), gts):
                acc.update(m, g.astype(np.float32))
            row.append(acc.mean_iou)
        print(f"| {clip} | {row[0]:.4f} | {row[1]:.4f} |", flush=True)


if __name__ == "__main__":
    main()
