"""Image input and output with Pillow.

Reading returns RGB uint8 HxWx3 whatever the file holds: EXIF orientation applied, greyscale,
CMYK, 16-bit, palette and RGBA converted. A pixel limit is checked from the header before any
pixel is decoded, so a decompression bomb is refused without allocating it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OutputError
from .atomic import atomic_output

DEFAULT_MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def max_pixels() -> int:
    """Pixel limit for inputs: ``BACKDROP_MAX_PIXELS`` or 100 megapixels."""
    try:
        return int(os.environ.get("BACKDROP_MAX_PIXELS", DEFAULT_MAX_PIXELS))
    except ValueError:
        return DEFAULT_MAX_PIXELS


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if a.max() > 255 else 255.0
        g = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack([g, g, g]))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA").convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def read_image(path: Path, *, limit: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3 (upright per EXIF)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not an image: {path}")
    limit = limit or max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            old = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None  # we check ourselves, with our own limit
            try:
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > limit:
                        raise InputError(
                            f"image {path.name} declares {w}x{h} pixels, over the limit of {limit} "
                            "(set BACKDROP_MAX_PIXELS to raise it)"
                        )
                    if w < 1 or h < 1:
                        raise InputError(f"image {path.name} has no pixels")
                    im.load()
                    im = ImageOps.exif_transpose(im)
                    return _to_rgb_array(im)
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"not an image or unsupported format: {path}") from None
    except PermissionError:
        raise InputError(f"input is not readable (permission denied): {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"corrupt or truncated image {path.name}: {str(exc).splitlines()[0]}") from None


def write_image(path: Path, array: np.ndarray, *, quality: int = 95) -> None:
    """Write RGB, RGBA or grey uint8 to ``path`` atomically; format from the suffix."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_SUFFIXES:
        raise OutputError(f"unsupported image output {path.name}: use .png, .jpg or .webp")
    if array.ndim == 3 and array.shape[2] == 4 and ext in (".jpg", ".jpeg", ".bmp"):
        raise OutputError(f"{ext} cannot hold transparency; write .png or .webp")
    im = Image.fromarray(array)
    params = {"quality": quality} if ext in (".jpg", ".jpeg", ".webp") else {}
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP",
           ".tif": "TIFF", ".tiff": "TIFF"}[ext]
    with atomic_output(path) as tmp:
        im.save(tmp, format=fmt, **params)
