"""Shared fixtures: the real data in ../shared/data and a session-wide model."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", REPO.parent / "shared" / "data"))


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.fail(f"shared data missing: {p} (set BACKDROP_SHARED_DATA)")
    return p


def load_pairs(set_name: str, limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB uint8 image, float32 truth in [0,1] at image size) for a shared image set."""
    from backdrop.io.image import read_image

    root = shared_path(set_name)
    rows = list(csv.DictReader(open(root / "index.csv")))[:limit]
    out = []
    for r in rows:
        img = read_image(root / r["image"])
        gt = read_image(root / r["mask"])[..., 0]
        gt = cv2.resize(gt, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        out.append((r["name"], img, gt.astype(np.float32) / 255.0))
    return out


@pytest.fixture(scope="session")
def shared() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def segmenter():
    from backdrop import load_model

    return load_model("selfie", quiet=True)


@pytest.fixture(scope="session")
def portrait_pairs():
    return load_pairs("portraits-soft")


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs, to fill the output disk mid-write (needs root to mount; skips otherwise)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
