"""Backgrounds: what goes behind the person.

``parse_background(spec)`` turns the ``--background`` value into a :class:`Background`:
an image path (scaled to *cover* the frame, never stretched), a video path (looped, one
background frame per output frame), ``#RRGGBB``, ``blur`` / ``blur:STRENGTH`` (the person's own
room, blurred with the person removed), ``transparent`` (RGBA out) or ``matte`` (the matte out).
A background returns RGB uint8 HxWx3 at the frame size for each frame index.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from ..resize import downscale

from ..errors import BackgroundError, BackdropError

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif"}
NAMED_COLOURS = {
    "green": (0, 177, 64), "blue": (0, 71, 187), "black": (0, 0, 0), "white": (255, 255, 255),
    "grey": (128, 128, 128), "gray": (128, 128, 128),
}
DEFAULT_BLUR = 12.0


def cover_resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale ``img`` so it covers ``width`` x ``height`` keeping its aspect, then centre-crop."""
    h, w = img.shape[:2]
    scale = max(width / w, height / h)
    nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    big = cv2.resize(img, (nw, nh), interpolation=interp)
    x0, y0 = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(big[y0:y0 + height, x0:x0 + width])


class Background:
    """Base class. ``mode`` is ``composite``, ``transparent`` or ``matte``."""

    mode = "composite"
    needs_frame = False

    def render(self, index: int, frame: np.ndarray, alpha: np.ndarray, small=None) -> np.ndarray:
        """Background for output frame ``index`` at the frame's size (RGB uint8 HxWx3).

        ``small`` is an optional ``(frame, alpha)`` pair at working size that the pipeline
        already has; backgrounds that need the frame (blur) use it to avoid a full-size pass.
        """
        raise NotImplementedError  # pragma: no cover

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return type(self).__name__


class ColourBackground(Background):
    def __init__(self, rgb: tuple[int, int, int]):
        self.rgb = tuple(int(c) for c in rgb)
        self._cache: np.ndarray | None = None

    def render(self, index, frame, alpha, small=None):
        if self._cache is None or self._cache.shape != frame.shape:
            self._cache = np.empty_like(frame)
            self._cache[:] = self.rgb
        return self._cache

    def describe(self):
        return "#%02x%02x%02x" % self.rgb


class ImageBackground(Background):
    def __init__(self, image: np.ndarray, name: str = "image"):
        self.image = image
        self.name = name
        self._cache: np.ndarray | None = None

    def render(self, index, frame, alpha, small=None):
        h, w = frame.shape[:2]
        if self._cache is None or self._cache.shape[:2] != (h, w):
            self._cache = cover_resize(self.image, w, h)
        return self._cache

    def describe(self):
        return self.name


class VideoBackground(Background):
    """A looping background video; output frame ``i`` shows background frame ``i mod N``.

    Frames are decoded as needed (streamed, never the whole video in memory) and the reader is
    reopened at the end of the file.
    """

    def __init__(self, path: Path):
        from ..io.video import VideoReader

        self.path = Path(path)
        self._open = lambda: iter(VideoReader(self.path))
        self._it = self._open()
        self._last_index = -1
        self._current: np.ndarray | None = None
        self._frames_seen = 0
        if self._next() is None:
            raise BackgroundError(f"background video has no frames: {self.path}")

    def _next(self) -> np.ndarray | None:
        try:
            self._current = next(self._it).image
            self._frames_seen += 1
            return self._current
        except StopIteration:
            return None

    def render(self, index, frame, alpha, small=None):
        while self._last_index < index:
            if self._last_index >= 0 and self._next() is None:
                self._it = self._open()
                self._next()
            self._last_index += 1
        h, w = frame.shape[:2]
        return cover_resize(self._current, w, h)

    def describe(self):
        return self.path.name


class BlurBackground(Background):
    """The frame's own background, blurred, with the person removed first.

    Blurring the whole frame would smear the person into the background (a visible glow around
    them). Instead this is a normalised convolution: ``blur(F*(1-a)) / blur(1-a)``, which fills
    the person's area from the surrounding background only. Computed at a reduced size (the blur
    removes the detail anyway), so it is cheap at 4K.
    """

    needs_frame = True

    def __init__(self, strength: float = DEFAULT_BLUR):
        if not 0 < strength <= 100:
            raise BackgroundError(f"blur strength must be in (0, 100], got {strength:g}")
        self.strength = float(strength)

    def render(self, index, frame, alpha, small=None):
        h, w = frame.shape[:2]
        sigma_full = self.strength * max(h, w) / 640.0  # strength is sigma at 640 px
        factor = max(1, int(sigma_full / 3))
        sw, sh = max(1, w // factor), max(1, h // factor)
        if small is not None and small[0].shape[1] >= sw:  # start from the working-size frame
            src, src_a = small
        else:
            src, src_a = frame, alpha
        small_f = downscale(src, sw, sh).astype(np.float32)
        a = downscale(src_a, sw, sh)
        # keep anything that is even partly person out of the fill
        keep = (a < 0.05).astype(np.float32)
        keep = cv2.erode(keep, np.ones((3, 3), np.uint8))
        sigma = max(0.5, sigma_full / factor)
        num = cv2.GaussianBlur(small_f * keep[..., None], (0, 0), sigma)
        den = cv2.GaussianBlur(keep, (0, 0), sigma)[..., None]
        # where no background is near at all, widen until it is
        filled = num / np.maximum(den, 1e-6)
        holes = den[..., 0] < 1e-3
        if holes.any():
            # far from any background (the middle of a large person): fill from a much coarser
            # grid, where the same blur reaches across the person cheaply
            tw, th = max(1, sw // 8), max(1, sh // 8)
            num2 = cv2.resize(small_f * keep[..., None], (tw, th), interpolation=cv2.INTER_AREA)
            den2 = cv2.resize(keep, (tw, th), interpolation=cv2.INTER_AREA)
            num2 = cv2.GaussianBlur(num2, (0, 0), 2.0)
            den2 = cv2.GaussianBlur(den2, (0, 0), 2.0)
            mean = (small_f * keep[..., None]).sum(axis=(0, 1)) / max(1.0, float(keep.sum()))
            coarse = np.where(den2[..., None] > 1e-4, num2 / np.maximum(den2, 1e-4)[..., None], mean)
            coarse = cv2.resize(coarse.astype(np.float32), (sw, sh), interpolation=cv2.INTER_LINEAR)
            filled[holes] = coarse[holes]
        # upsample in 8 bits: the blurred image has no detail to lose, and it is 3x cheaper
        small8 = np.clip(filled + 0.5, 0, 255).astype(np.uint8)
        return cv2.resize(small8, (w, h), interpolation=cv2.INTER_LINEAR)

    def describe(self):
        return f"blur:{self.strength:g}"


class TransparentBackground(Background):
    mode = "transparent"

    def describe(self):
        return "transparent"


class MatteBackground(Background):
    mode = "matte"

    def describe(self):
        return "matte"


_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def parse_colour(text: str) -> tuple[int, int, int] | None:
    t = text.strip().lower()
    if t in NAMED_COLOURS:
        return NAMED_COLOURS[t]
    m = _HEX.match(t)
    if not m or not t.startswith("#"):
        return None
    hx = m.group(1)
    if len(hx) == 3:
        hx = "".join(c * 2 for c in hx)
    return tuple(int(hx[i:i + 2], 16) for i in (0, 2, 4))


def parse_background(spec) -> Background:
    """Build a :class:`Background` from a CLI/API value (string, path, RGB tuple or array)."""
    if isinstance(spec, Background):
        return spec
    if spec is None:
        return BlurBackground()
    if isinstance(spec, np.ndarray):
        if spec.ndim != 3 or spec.shape[2] != 3 or spec.dtype != np.uint8:
            raise BackgroundError("a background array must be RGB uint8 HxWx3")
        return ImageBackground(spec, "array")
    if isinstance(spec, tuple) and len(spec) == 3:
        return ColourBackground(spec)
    text = str(spec).strip()
    low = text.lower()
    if low == "transparent":
        return TransparentBackground()
    if low == "matte":
        return MatteBackground()
    if low == "blur" or low.startswith("blur:"):
        value = low.partition(":")[2]
        try:
            strength = float(value) if value else DEFAULT_BLUR
        except ValueError:
            raise BackgroundError(f"blur strength must be a number: {text!r}") from None
        return BlurBackground(strength)
    colour = parse_colour(text)
    if colour is not None:
        return ColourBackground(colour)
    path = Path(text).expanduser()
    ext = path.suffix.lower()
    if ext in IMAGE_EXTS | VIDEO_EXTS and not path.is_file():
        raise BackgroundError(f"background file not found: {path}")
    if ext in IMAGE_EXTS:
        from ..io.image import read_image

        try:
            return ImageBackground(read_image(path), path.name)
        except BackdropError as exc:
            raise BackgroundError(f"background image unusable: {exc}") from None
    if ext in VIDEO_EXTS:
        try:
            return VideoBackground(path)
        except BackgroundError:
            raise
        except BackdropError as exc:
            raise BackgroundError(f"background video unusable: {exc}") from None
    raise BackgroundError(
        f"unsupported background {text!r}: use an image, a video, #RRGGBB, blur[:STRENGTH], "
        "transparent or matte"
    )
