"""Image input and output with Pillow.

Reading returns RGB uint8 HxWx3 whatever the file holds: EXIF orientation applied, greyscale,
CMYK, 16-bit, palette and RGBA converted. A pixel limit is checked from the header before any
pixel is decoded, so a decompression bomb is refused without allocating it.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError, OptionError, OutputError
from .paths import missing_input, why_missing
from .atomic import atomic_output

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def max_pixels() -> int:
    """Pixel limit for inputs: ``BACKDROP_MAX_PIXELS`` or 100 megapixels.

    A value that is not a positive integer is an error rather than silently the default: a
    typo must not quietly leave a server with a limit other than the one its admin chose.
    """
    raw = os.environ.get("BACKDROP_MAX_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw)) if any(c in raw for c in ".eE") else int(raw)
    except ValueError:
        raise OptionError(f"BACKDROP_MAX_PIXELS must be a positive integer, got {raw!r}") from None
    if value < 1:
        raise OptionError(f"BACKDROP_MAX_PIXELS must be a positive integer, got {raw!r}")
    return value


def check_regular_file(path: Path, what: str) -> None:
    """Refuse a missing input, a folder, or anything but a regular file (a FIFO, /dev/zero, a
    socket) with one line, before anything opens it: reading those blocks or never ends."""
    try:
        st = os.stat(path)
    except OSError as exc:
        reason = why_missing(path)
        if reason == "exists":
            raise InputError(f"cannot read input {path}: {exc.strerror}") from None
        raise missing_input(path) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"input is a folder, not {what}: {path}")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"input is not a regular file (a pipe, device or socket), not {what}: {path}")


# Decoders may raise any of these on a damaged file (found by tests/test_fuzz.py and by
# reading Pillow's plugins); all of them mean "this file is broken", never a bug of ours.
_CORRUPT = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
            ZeroDivisionError, OverflowError, NotImplementedError)
# Image.MAX_IMAGE_PIXELS is process-global: swap it under a lock so threads (the web server)
# never see each other's value.
_PIL_LIMIT_LOCK = threading.Lock()


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples span 0..65535 whatever the picture shows: a dark 16-bit image must
        # stay dark, so the scale comes from the mode, never from the pixel values. Mode "I"
        # (32-bit) is what some Pillow versions give 16-bit PNGs; wider data is scaled by its max.
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0
        if im.mode == "I" and a.size and a.max() > 65535:
            peak = float(a.max())
        g = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack([g, g, g]))
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        finite = a[np.isfinite(a)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0
        g = np.clip(np.nan_to_num(a) * scale + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.dstack([g, g, g]))
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA").convert("RGB")
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def _upright(im: Image.Image, name: str) -> Image.Image:
    """Apply the EXIF orientation; a damaged EXIF block leaves the picture as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception as exc:  # noqa: BLE001 - any EXIF parsing failure: keep the pixels
        log.warning("ignoring unreadable EXIF orientation of %s (%s)", name, exc)
        return im


def read_image(path: Path, *, limit: int | None = None) -> np.ndarray:
    """Read an image file as RGB uint8 HxWx3 (upright per EXIF)."""
    path = Path(path)
    check_regular_file(path, "an image")
    limit = limit or max_pixels()
    w = h = 0
    try:
        with warnings.catch_warnings():
            # Pillow warns (UserWarning, DecompressionBombWarning) about damaged metadata; the
            # user gets our one-line verdict instead of library noise.
            warnings.simplefilter("ignore")
            with _PIL_LIMIT_LOCK:
                old = Image.MAX_IMAGE_PIXELS
                Image.MAX_IMAGE_PIXELS = None  # we check ourselves, with our own limit
                try:
                    im = Image.open(path)
                finally:
                    Image.MAX_IMAGE_PIXELS = old
            with im:
                w, h = im.size
                if w * h > limit:
                    raise InputError(
                        f"image {path.name} declares {w}x{h} pixels, over the limit of {limit} "
                        "(set BACKDROP_MAX_PIXELS to raise it)"
                    )
                if w < 1 or h < 1:
                    raise InputError(f"image {path.name} has no pixels")
                im.load()
                if im.size[0] * im.size[1] > limit:  # a plugin may grow the size on load
                    raise InputError(f"image {path.name} decodes to {im.size[0]}x{im.size[1]} pixels, over "
                                     f"the limit of {limit} (set BACKDROP_MAX_PIXELS to raise it)")
                im = _upright(im, path.name)
                return _to_rgb_array(im)
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"not an image or unsupported format: {path}") from None
    except PermissionError:
        raise InputError(f"input is not readable (permission denied): {path}") from None
    except Image.DecompressionBombError:  # pragma: no cover - the limit above is checked first
        raise InputError(f"image {path.name} is too large to decode safely") from None
    except MemoryError:
        raise InputError(f"not enough memory to decode image {path.name} ({w}x{h})") from None
    except _CORRUPT as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__
        raise InputError(f"corrupt or truncated image {path.name}: {first}") from None


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
