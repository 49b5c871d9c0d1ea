"""Teacher labelling: turn unlabelled frames into (frame, soft mask) pairs, keeping only the
frames the teacher is sure about.

Why a filter: a teacher's mistakes become the student's ground truth. A cheap, label-free sign
of a mistake is disagreement between runs that should agree: the frame mirrored left-right and
the frame seen at another scale (a centred zoom). Where those runs disagree (IoU between their
binarised mattes below ``min_agreement``), the frame is dropped; where they agree, their mean
is the label (averaging also smooths the teacher's own jitter).

The teacher is any Backdrop model: ``selfie`` (MediaPipe LiteRT) or a ``.onnx``/``.tflite`` file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import TrainError


def load_teacher(model: str = "selfie", threads: int | None = 1):
    """A :class:`backdrop.models.base.Segmenter` for the teacher (frame -> matte at frame size)."""
    from ..models import load_model

    return load_model(model, threads=threads, quiet=True)


def _binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = a > 0.5, b > 0.5
    union = np.count_nonzero(pa | pb)
    return 1.0 if union == 0 else np.count_nonzero(pa & pb) / union


@dataclass
class TeacherLabel:
    matte: np.ndarray          # float32 HxW in [0, 1], frame size (mean of the agreeing runs)
    agreement: float           # the worst pairwise IoU between runs
    keep: bool


def label_frame(teacher, frame: np.ndarray, *, zoom: float = 0.8, min_agreement: float = 0.9) -> TeacherLabel:
    """Run the teacher on the frame, its mirror and a centred zoom; score their agreement.

    The zoom crops the central ``zoom`` fraction (the person appears 1/zoom times larger) and
    is compared with the plain run on that region only. The label is the mean of the plain and
    mirrored runs, plus the zoomed run inside its region.
    """
    h, w = frame.shape[:2]
    if hasattr(teacher, "reset"):
        teacher.reset()
    base = teacher(frame)
    if hasattr(teacher, "reset"):
        teacher.reset()
    flip = teacher(np.ascontiguousarray(frame[:, ::-1]))[:, ::-1]
    ch, cw = max(1, round(h * zoom)), max(1, round(w * zoom))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    if hasattr(teacher, "reset"):
        teacher.reset()
    zoomed = teacher(np.ascontiguousarray(frame[y0:y0 + ch, x0:x0 + cw]))
    if not all(np.isfinite(m).all() for m in (base, flip, zoomed)):
        # NaN > 0.5 is False everywhere: three all-NaN runs "agreed" perfectly (IoU 1.0) and became
        # empty masks; a teacher that gives NaN is broken, not sure
        raise TrainError("the teacher gave NaN or infinite values: it is not a usable teacher")
    agreement = min(_binary_iou(base, flip), _binary_iou(base[y0:y0 + ch, x0:x0 + cw], zoomed))
    matte = (base + flip) / 2.0
    inner = matte[y0:y0 + ch, x0:x0 + cw]
    matte[y0:y0 + ch, x0:x0 + cw] = (2.0 * inner + zoomed) / 3.0
    return TeacherLabel(np.clip(matte, 0, 1).astype(np.float32), float(agreement),
                        bool(agreement >= min_agreement))


def _write_csv(path: Path, names: list[str], rows: list[dict]) -> None:
    from ..io.atomic import write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    write_bytes(path, buf.getvalue())


def label_frames(teacher, frames: Iterable[tuple[str, np.ndarray]], out_dir: str | Path, *,
                 min_agreement: float = 0.9, min_person: float = 0.0, quiet: bool = True) -> dict:
    """Label frames into ``out_dir`` as a pairs folder (``images/``, ``masks/``, ``index.csv``)
    that :func:`backdrop.train.data.find_pairs` reads. Dropped frames are listed, not written.

    ``min_person`` (fraction of the frame) also drops frames with (almost) nobody in them.
    Returns counts and the agreement of every frame.
    """
    from ..io.image import write_image

    from ..io.atomic import make_folder

    out = Path(out_dir)
    for sub in (out, out / "images", out / "masks"):
        make_folder(sub, "label output folder")
    rows, dropped = [], []
    for name, frame in frames:
        lab = label_frame(teacher, frame, min_agreement=min_agreement)
        person = float((lab.matte > 0.5).mean())
        if not lab.keep or person < min_person:
            dropped.append({"name": name, "agreement": round(lab.agreement, 4), "person": round(person, 4)})
            continue
        write_image(out / "images" / f"{name}.png", frame)
        write_image(out / "masks" / f"{name}.png", np.clip(lab.matte * 255 + 0.5, 0, 255).astype(np.uint8))
        rows.append({"name": name, "image": f"images/{name}.png", "mask": f"masks/{name}.png",
                     "agreement": round(lab.agreement, 4), "person": round(person, 4)})
        if not quiet:
            print(f"labelled {name}: agreement {lab.agreement:.3f}", flush=True)
    _write_csv(out / "index.csv", ["name", "image", "mask", "agreement", "person"], rows)
    _write_csv(out / "dropped.csv", ["name", "agreement", "person"], dropped)
    if not rows and not dropped:
        raise TrainError("no frames to label")
    return {"kept": len(rows), "dropped": len(dropped), "out": str(out),
            "agreement": [r["agreement"] for r in rows] + [d["agreement"] for d in dropped]}

