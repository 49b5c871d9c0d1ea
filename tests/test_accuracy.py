"""The person in real photos is kept and the background replaced (shared set, real masks)."""

from __future__ import annotations

import numpy as np
import pytest

from backdrop import Pipeline
from conftest import load_pairs

# Measured 2026-11-22 with the default pipeline: see docs/benchmarks.md. Floors sit a little below.
MEAN_IOU_FLOOR = {"portraits-removebg": 0.87, "portraits-soft": 0.93}


@pytest.fixture(scope="module")
def pipeline(segmenter):
    return Pipeline(background="matte", segmenter=segmenter)


@pytest.mark.parametrize("set_name", ["portraits-removebg", "portraits-soft"])
def test_mean_iou_over_whole_shared_set(set_name, pipeline):
    ious = []
    for _, img, gt in load_pairs(set_name):
        pipeline.reset()
        m = pipeline.matte(img) > 0.5
        g = gt > 0.5
        ious.append((m & g).sum() / max(1, (m | g).sum()))
    mean = float(np.mean(ious))
    print(f"{set_name}: mean IoU {mean:.4f} over {len(ious)} images")
    assert mean >= MEAN_IOU_FLOOR[set_name]


def test_background_replaced_person_kept(portrait_pairs, segmenter):
    green = np.array([0, 255, 0])
    p = Pipeline(background="#00ff00", segmenter=segmenter)
    for _, img, gt in portrait_pairs[:8]:
        p.reset()
        out = p(img).astype(int)
        bg, fg = gt < 0.02, gt > 0.98
        # background pixels became green, person pixels kept their colour
        assert np.median(np.abs(out[bg] - green).sum(axis=1)) < 30
        assert np.median(np.abs(out[fg] - img[fg].astype(int)).sum(axis=1)) < 10
