"""Shared fixtures: the real data in ../shared/data and a session-wide model."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", REPO.parent / "shared" / "data"))


def restore_stop_signals() -> list[str]:
    """Give this process (and so every child the tests start) the default stop signals.

    A shell's ``&`` without job control starts a job with SIGINT and SIGQUIT ignored, ``nohup``
    ignores SIGHUP, and a CI runner may do either. Ignored dispositions survive ``exec``, and a
    Python started with SIGINT ignored installs no KeyboardInterrupt handler: the signal tests
    then stopped nothing and left decoder threads behind (11 failures under ``nohup ... &``).
    Handlers, unlike ignores, are reset to the default by ``exec``, so restoring them here is
    enough for the children too. Returns the names it restored."""
    restored = []
    for name, handler in (("SIGINT", signal.default_int_handler), ("SIGHUP", signal.SIG_DFL),
                          ("SIGQUIT", signal.SIG_DFL), ("SIGTERM", signal.SIG_DFL)):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, handler)
            restored.append(name)
    return restored


def pytest_configure(config) -> None:
    restore_stop_signals()


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


def ring_outside(truth: np.ndarray, near: int = 3, far: int = 25) -> np.ndarray:
    """The pixels between ``near`` and ``far`` px outside a true mask: where a glow would show."""
    t = truth.astype(np.uint8)
    return (cv2.dilate(t, np.ones((2 * far + 1,) * 2, np.uint8)) > 0) & ~(cv2.dilate(t, np.ones((2 * near + 1,) * 2, np.uint8)) > 0)


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
