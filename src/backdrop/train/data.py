"""Training data on disk: labelled folder pairs, deterministic splits, frames and backgrounds.

Why its own module: everything that *finds and reads* training material lives here (the
``index.csv`` / ``images/`` + ``masks/`` layouts, the hash-based train/val/eval split, frames
from folders or videos, background plates), apart from what is done to it afterwards
(:mod:`.geometry`, :mod:`.photometric`, :mod:`.synth`). The split and the commands that list
data (``backdrop train info``, ``label``) need only this.

Pure NumPy/OpenCV (no torch), so it can be tested and reused without the extra.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..io.image import IMAGE_SUFFIXES, read_image
from . import TrainError

SPLITS = ("train", "val", "eval")


# ---------------------------------------------------------------------------------------------
# pairs and splits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """One labelled example on disk: an image and its mask or alpha (8-bit, 255 = person)."""

    name: str
    image: Path
    mask: Path


def find_pairs(root: str | Path) -> list[Pair]:
    """Pairs in a folder: ``index.csv`` (columns name,image,mask), or ``images/`` + ``masks/``
    (or ``alpha/``/``mattes/``) matched by file stem."""
    root = Path(root)
    if not root.is_dir():
        raise TrainError(f"training data folder not found: {root}")
    index = root / "index.csv"
    if index.is_file():
        return _read_index(root, index)
    images = root / "images"
    masks = next((root / d for d in ("masks", "alpha", "mattes") if (root / d).is_dir()), None)
    if not images.is_dir() or masks is None:
        raise TrainError(f"{root} has neither index.csv nor images/ with masks/ (or alpha/)")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [Pair(p.stem, p, by_stem[p.stem]) for p in sorted(images.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in by_stem]
    if not pairs:
        raise TrainError(f"no image/mask pairs with matching names under {root}")
    return pairs


MAX_INDEX_BYTES = 64 * 1024 * 1024  # about a million rows


def _inside(root: Path, index: Path, line: int, text: str | None) -> Path:
    """A path of an ``index.csv`` row, which must stay inside the data folder (no absolute path,
    no ``..``): a shared folder must not make training read files from elsewhere."""
    if not text or not text.strip():
        raise TrainError(f"{index} line {line}: empty image or mask path")
    if "\0" in text:
        raise TrainError(f"{index} line {line}: {text!r} is not a usable path")
    rel = Path(text)
    if rel.is_absolute() or ".." in rel.parts:
        raise TrainError(f"{index} line {line}: {text!r} is outside the data folder (give a relative path)")
    return root / rel


def _read_index(root: Path, index: Path) -> list[Pair]:
    """The pairs an ``index.csv`` lists, with one line for anything wrong in it."""
    if index.stat().st_size > MAX_INDEX_BYTES:
        raise TrainError(f"{index} is over {MAX_INDEX_BYTES // 2 ** 20} MB: not an index of pairs")
    try:
        with open(index, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            fieldnames = reader.fieldnames or []
    except (UnicodeDecodeError, csv.Error) as exc:
        raise TrainError(f"{index} is not a readable CSV file: {str(exc)[:160]}") from None
    if not rows or not {"image", "mask"} <= set(fieldnames):
        raise TrainError(f"{index} needs columns image and mask, and at least one row")
    pairs = []
    for n, r in enumerate(rows, start=2):  # line 1 is the header
        image, mask = _inside(root, index, n, r.get("image")), _inside(root, index, n, r.get("mask"))
        pairs.append(Pair(r.get("name") or image.stem, image, mask))
    return pairs


def hash_fraction(name: str, salt: str = "backdrop") -> float:
    """A stable number in [0, 1) from a name: the split never depends on file order or seed."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(name: str, eval_fraction: float = 0.2, val_fraction: float = 0.1, salt: str = "backdrop") -> str:
    """``eval`` (never trained on, reported), ``val`` (per-epoch validation) or ``train``."""
    u = hash_fraction(name, salt)
    if u < eval_fraction:
        return "eval"
    if u < eval_fraction + val_fraction:
        return "val"
    return "train"


def select(pairs: list[Pair], part: str, eval_fraction: float = 0.2, val_fraction: float = 0.1,
           salt: str = "backdrop") -> list[Pair]:
    if part not in SPLITS and part != "all":
        raise TrainError(f"split must be one of {SPLITS} or all, not {part!r}")
    if part == "all":
        return list(pairs)
    return [p for p in pairs if split_of(p.name, eval_fraction, val_fraction, salt) == part]


def load_pair(pair: Pair, max_side: int | None = 512) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 HxWx3, float32 alpha HxW in [0, 1]); the mask is resized to the image (the
    shared remove.bg masks are often smaller), the pair shrunk so its longer side <= max_side."""
    img = read_image(pair.image)
    m = read_image(pair.mask)[..., 0]
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return img, m.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------
# frames from folders or videos (backgrounds, unlabelled scenes)
# ---------------------------------------------------------------------------------------------
def iter_frames(source: str | Path, every: int = 1, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB frame) from a folder of images (sorted) or a video file, every ``every``-th."""
    source = Path(source)
    every = max(1, int(every))
    n = 0
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for i, p in enumerate(files):
            if i % every:
                continue
            yield p.stem, read_image(p)
            n += 1
            if limit and n >= limit:
                return
        return
    if not source.exists():
        raise TrainError(f"frames not found: {source}")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        yield source.stem, read_image(source)
        return
    from ..io.video import VideoReader

    reader = VideoReader(source)
    try:
        for fr in reader:
            if fr.index % every:
                continue
            yield f"{source.stem}-{fr.index:06d}", fr.image
            n += 1
            if limit and n >= limit:
                return
    finally:
        reader.close()


def remove_person(img: np.ndarray, alpha: np.ndarray, grow: int = 9) -> np.ndarray:
    """A background plate from a labelled photo: the person (grown a little) inpainted away.

    Used when no background folder is given, so that synthesis still has many backgrounds;
    the smeared region is background-coloured and teaches "not a person" too.
    """
    mask = (alpha > 0.1).astype(np.uint8)
    if grow:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    if mask.mean() > 0.85:  # nothing left to inpaint from
        return np.ascontiguousarray(cv2.GaussianBlur(img, (0, 0), 25))
    return cv2.inpaint(img, mask * 255, 5, cv2.INPAINT_TELEA)


def load_backgrounds(sources: list[str | Path], max_side: int = 512, every: int = 30,
                     limit: int = 2000) -> list[np.ndarray]:
    """Background images from folders, image files or videos (one frame in ``every``)."""
    out: list[np.ndarray] = []
    for src in sources:
        for _, fr in iter_frames(src, every=every if Path(src).is_file() else 1, limit=limit):
            h, w = fr.shape[:2]
            s = min(1.0, max_side / max(h, w))
            if s < 1:
                fr = cv2.resize(fr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            out.append(fr)
            if len(out) >= limit:
                return out
    if not out:
        raise TrainError(f"no background images found in {', '.join(map(str, sources))}")
    return out
