"""Finding what to evaluate: images and their truth matched by file stem, frames told from photos.

Kept apart from the scoring because it only looks at names and sizes: natural name order
(``frame2`` before ``frame10``), stem matching with the unmatched on either side reported, and
the test that decides whether a folder is a sequence of frames or a set of photos.
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..io.image import IMAGE_SUFFIXES
from ..io.video import VIDEO_SUFFIXES


def natural_key(name: str) -> list:
    """Sort key that puts ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> dict[str, Path]:
    """{stem: path} of the images in ``folder`` (not recursive), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    out: dict[str, Path] = {}
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    for p in files:
        if p.stem in out:
            raise InputError(f"two files in {folder} share the name {p.stem!r} ({out[p.stem].name}, {p.name})")
        out[p.stem] = p
    return out


def match_pairs(images: Path, truth: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(name, image, truth) pairs matched by file stem, plus unmatched image and truth stems."""
    images, truth = Path(images), Path(truth)
    if images.is_file():
        if not truth.is_file():
            raise InputError(f"for a single image the ground truth must be a file too: {truth}")
        return [(images.stem, images, truth)], [], []
    imgs, gts = list_images(images), list_images(truth)
    if not imgs:
        raise InputError(f"no images (.jpg/.png/.webp...) in folder {images}")
    pairs = [(s, p, gts[s]) for s, p in imgs.items() if s in gts]
    if not pairs:
        raise InputError(f"no image in {images} has a ground truth of the same name in {truth}")
    return pairs, [s for s in imgs if s not in gts], [s for s in gts if s not in imgs]


def is_video(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES


def looks_like_frames(folder: Path) -> bool:
    """A folder of numbered frames of one size (``00000.jpg``...), i.e. a sequence, not photos."""
    files = list(list_images(folder).items())
    if len(files) < 3 or not all(s.isdigit() for s, _ in files):
        return False
    numbers = [int(s) for s, _ in files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return False
    sizes = set()
    for _, p in files:
        try:
            with Image.open(p) as im:
                sizes.add(im.size)
        except (OSError, UnidentifiedImageError):
            return False
        if len(sizes) > 1:
            return False
    return True
