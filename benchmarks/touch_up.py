"""Touch-up (skin smoothing) on the shared portraits: texture, edges, hair, processing size, speed.

    python benchmarks/touch_up.py            # about a minute on 2 cores

For every portraits-soft image whose face box is found (``backdrop.metrics.texture``), the
after / before ratios of the face's fine and mid-scale skin texture, its strongest edges (all,
and the eyes' half), and the hair's texture and strong edges, as median and worst over the
faces; for the default and for the variants that were weighed against it. Then the processing
size: soft frames (portraits upscaled to 1080 high) at full size with the mid pass at 360 as
shipped, with it at half size, everything at 720; sharp frames (the portraits at 2/3 size)) and the
time per frame at 720p and 1080p. Prints Markdown (docs/quality.md, "Touch-up").
"""

from __future__ import annotations

import csv
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

import backdrop.stages.touch_up as T
from backdrop.io.image import read_image
from backdrop.metrics.texture import face_box, texture_ratios

SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
KEYS = ("fine", "mid", "edges", "eyes", "hair_fine", "hair_edges")
WORST = {"fine": max, "mid": max}  # texture: the least smoothed face; the rest: the most changed


def portraits() -> list[tuple[str, np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
    root = SHARED / "portraits-soft"
    out = []
    for row in csv.DictReader(open(root / "index.csv")):
        img = read_image(root / row["image"])
        truth = read_image(root / row["mask"])[..., 0].astype(np.float32) / 255
        truth = cv2.resize(truth, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
        box = face_box(img, truth)
        if box is not None:
            out.append((row["name"], img, truth, box))
    return out


@contextmanager
def patched(**constants):
    old = {k: getattr(T, k) for k in constants}
    for k, v in constants.items():
        setattr(T, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(T, k, v)


def summary(rows: list[dict[str, float]]) -> str:
    cells = []
    for k in KEYS:
        vals = [r[k] for r in rows]
        cells.append(f"{np.median(vals):.3f} / {WORST.get(k, min)(vals):.3f}")
    return " | ".join(cells)


def measure(faces, strength: float = 1.0, scale: float = 1.0) -> list[dict[str, float]]:
    rows = []
    for _, img, truth, box in faces:
        if scale != 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            truth = cv2.resize(truth, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR)
            box = tuple(round(v * scale) for v in box)
        rows.append(texture_ratios(img, T.touch_up(img, truth, strength), truth, box))
    return rows


def timing(frame: np.ndarray, matte: np.ndarray, n: int = 9) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        T.touch_up(frame, matte, 1.0)
        ts.append(time.perf_counter() - t0)
    return 1000 * float(np.median(ts))


def main() -> None:
    faces = portraits()
    print(f"{len(faces)} of 20 portraits-soft faces found (median / worst over them; 1 = unchanged)\n")
    print("| variant | fine texture | mid texture | face edges | eye edges | hair texture | hair edges |")
    print("|---|---|---|---|---|---|---|")
    variants = [
        ("**default, strength 1**", {}, 1.0),
        ("default, strength 0.5", {}, 0.5),
        ("fine scale only (no half-size pass)", {"SIGMA_MID": 0.01}, 1.0),
        ("no texture gate", {"GATE": (50.0, 60.0)}, 1.0),
        ("one bilateral, no gate (sigma 30)", {"SIGMA_MID": 0.01, "GATE": (50.0, 60.0)}, 1.0),
        ("sigma 40 / 40", {"SIGMA_FINE": 40.0}, 1.0),
        ("sigma 30 / 20", {"SIGMA_MID": 30.0, "SIGMA_FINE": 20.0}, 1.0),
        ("gate 0.05..0.3", {"GATE": (0.05, 0.3)}, 1.0),
        ("gate 0.15..0.4", {"GATE": (0.15, 0.4)}, 1.0),
    ]
    for label, constants, strength in variants:
        with patched(**constants):
            print(f"| {label} | {summary(measure(faces, strength))} |")
    print("\nProcessing size (soft: portraits upscaled bicubically to 1080 high, ratios at 1080):\n")
    print("| processed at | fine texture | mid texture | face edges | eye edges | hair texture | hair edges |")
    print("|---|---|---|---|---|---|---|")
    big = 1080 / 512
    print(f"| soft: 1080, mid pass at 360 (shipped) | {summary(measure(faces, scale=big))} |")
    with patched(MID_SIDE=10 ** 6):
        print(f"| soft: 1080, mid pass at 540 (half) | {summary(measure(faces, scale=big))} |")
    with patched(PROCESS_SIDE=720):
        print(f"| soft: 720, mid pass at 360 | {summary(measure(faces, scale=big))} |")
    with patched(PROCESS_SIDE=round(512 * 720 / 1080), MID_SIDE=10 ** 6):
        print(f"| sharp: the 512 px portraits at 2/3 (a sharp 1080p frame at 720) | {summary(measure(faces))} |")
    import av

    with av.open(str(SHARED / "clips" / "talking-portrait-720x1280.mp4")) as c:
        frame = next(f for i, f in enumerate(c.decode(video=0)) if i == 30).to_ndarray(format="rgb24")
    from backdrop import Pipeline

    matte = Pipeline(background="#00ff00", quiet=True).matte(frame)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"\nSpeed ({load}; talking-portrait frame 30, person {100 * (matte > 0.5).mean():.0f}% of it, "
          f"only the person's box processed):\n")
    for name, s in (("720x1280", 1.0), ("1080x1920", 1.5)):
        f = frame if s == 1 else cv2.resize(frame, None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
        m = matte if s == 1 else cv2.resize(matte, (f.shape[1], f.shape[0]), interpolation=cv2.INTER_LINEAR)
        line = f"- {name}: {timing(f, m):.1f} ms"
        if s != 1:
            with patched(PROCESS_SIDE=720):
                line += f" (at 720 instead: {timing(f, m):.1f} ms)"
        print(line)


if __name__ == "__main__":
    main()
