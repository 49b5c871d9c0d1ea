"""The raw material of synthetic evaluation: people with a known soft alpha, person-free backgrounds.

Shared by the composite scorer (:mod:`.composite`) and the generators (:mod:`.synthetic`):
reading a folder of photos and their alpha mattes (matched by stem, as ``backdrop eval`` does),
reading a folder of backgrounds in a fixed (natural name) order, and the person's colours ``F``.

The person's colours. A photo's edge pixels are already mixed with its own original background
(``I = a*F + (1-a)*B_orig``), so taking the photo itself as ``F`` carries a little of that
background into every synthetic composite. ``foreground="blur-fusion"`` (the default) instead
estimates ``F`` once from the photo and the *true* alpha with Blur-Fusion (Forte & Pitie, ICIP
2021; ``compose/foreground.py``) at full resolution; ``foreground="photo"`` takes the photo
as is. Both are approximations of the unknown real ``F``; note that the pipeline's
decontamination stage uses the same estimator (from its own matte, at working size), so
Blur-Fusion truth is somewhat kind to it, and ``photo`` truth somewhat unkind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..compose.backgrounds.base import cover_resize
from ..compose.foreground import estimate_foreground
from ..errors import InputError
from ..io.image import read_image
from .files import list_images, match_pairs
from .truth import fit_truth, read_truth

FOREGROUNDS = ("blur-fusion", "photo")


def quantize_alpha(alpha: np.ndarray) -> np.ndarray:
    """The alpha rounded to 8 bits (float32 in [0, 1]): what a PNG mask holds, so written truth is exact."""
    return (np.clip(np.asarray(alpha, np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
            .astype(np.float32) / 255.0)


def true_foreground(image: np.ndarray, alpha: np.ndarray, method: str = "blur-fusion") -> np.ndarray:
    """The person's colours ``F`` (RGB uint8 HxWx3) for a photo and its true alpha (see module doc)."""
    if method not in FOREGROUNDS:
        raise ValueError(f"foreground must be one of {', '.join(FOREGROUNDS)}, not {method!r}")
    if method == "photo":
        return image
    scale = max(image.shape[:2]) / 512.0  # the decontamination stage's radii, at full resolution
    F = estimate_foreground(image, alpha, radii=(max(31, int(90 * scale)), 5))
    return np.clip(F * 255.0 + 0.5, 0, 255).astype(np.uint8)


def iter_people(images: str | Path, truth: str | Path, limit: int | None = None
                ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB uint8 photo, float32 alpha at its size) per matched pair, in natural name order,
    read one at a time."""
    pairs, _, _ = match_pairs(Path(images), Path(truth))
    for name, img_path, gt_path in pairs[:limit] if limit else pairs:
        image = read_image(img_path)
        alpha, _ = read_truth(gt_path)
        yield name, image, fit_truth(alpha, image.shape, f"ground truth {gt_path.name}")


def load_people(images: str | Path, truth: str | Path, limit: int | None = None
                ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """:func:`iter_people` as a list."""
    return list(iter_people(images, truth, limit))


def load_backgrounds(folder: str | Path) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 image) for every image in ``folder``, in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"backgrounds must be a folder of person-free images: {folder}")
    files = list_images(folder)
    if not files:
        raise InputError(f"no background images in {folder}")
    return [(stem, read_image(path)) for stem, path in files.items()]


def fit_background(background: np.ndarray, height: int, width: int) -> np.ndarray:
    """The background scaled to cover ``width`` x ``height`` (aspect kept) and centre-cropped."""
    return cover_resize(background, width, height)
