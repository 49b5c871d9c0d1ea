"""Reading ground truth for ``backdrop eval``: masks and alpha mattes, whatever their file format.

Apart from the scoring because it is where published data sets differ: cut-outs carry the matte
in their alpha channel, masks in their luminance, some in 16 bits, many at a reduced size. Here
every one becomes a float32 HxW matte in [0, 1] of its image's size (or an error that says why the
pair does not belong together), and is judged a binary mask or a soft alpha.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from ..io.image import max_pixels

SOFT_FRACTION = 0.01  # truth with more than 1 % of pixels strictly between 0 and 1 is a soft alpha


def _alpha_array(im: Image.Image) -> np.ndarray:
    """Float64 HxW in [0, 1] from any Pillow mode: alpha if present and used, else luminance."""
    bands = im.getbands()
    if "A" in bands or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.min() < 255:  # a cut-out: the alpha channel is the matte
            return alpha.astype(np.float64) / 255.0
        im = im.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a / (65535.0 if a.max() > 255 else 255.0), 0, 1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a if a.max() <= 1.0 else a / 255.0, 0, 1)
    return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def read_truth(path: Path) -> tuple[np.ndarray, bool]:
    """Read a ground-truth mask or alpha matte: (float32 HxW in [0, 1], is_soft)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground truth not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels():
                    raise InputError(f"ground truth {path.name} declares {w}x{h} pixels, over the limit")
                im.load()
                alpha = _alpha_array(ImageOps.exif_transpose(im))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"ground truth is not an image: {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"corrupt ground truth {path.name}: {str(exc).splitlines()[0]}") from None
    return alpha.astype(np.float32), is_soft(alpha)


def is_soft(alpha: np.ndarray) -> bool:
    """True for an alpha matte, False for a binary mask (judged before any resizing)."""
    eps = 0.5 / 255
    return float(np.mean((alpha > eps) & (alpha < 1 - eps))) > SOFT_FRACTION


def fit_truth(truth: np.ndarray, shape: tuple[int, ...], name: str = "ground truth") -> np.ndarray:
    """Resize ``truth`` to the image size ``shape`` (H, W) if it has the same aspect ratio."""
    ih, iw = shape[:2]
    th, tw = truth.shape[:2]
    if (th, tw) == (ih, iw):
        return truth
    # same aspect within rounding: the truth's width scaled by the height ratio lands within 2 %
    if abs(tw * ih / th - iw) > max(2.0, 0.02 * iw):
        raise InputError(f"{name} is {tw}x{th} but its image is {iw}x{ih} (different aspect ratio)")
    interp = cv2.INTER_AREA if th > ih else cv2.INTER_LINEAR
    return np.clip(cv2.resize(truth, (iw, ih), interpolation=interp), 0, 1).astype(np.float32)
