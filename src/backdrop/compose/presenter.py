"""Presenter mode: the cut-out person over slides or a screen recording.

For classes and talks the person belongs in front of the material, not in front of their room.
The slides (a PDF, a folder of images, or a video such as a screen recording) fill the frame,
fitted without cropping (letterboxed); the person is scaled and placed at a corner or a side so
the slide's centre stays visible. In file mode slides advance at given timestamps; in live mode
``advance()`` moves to the next/previous slide (keyboard or control message).
"""

from __future__ import annotations

import bisect
from pathlib import Path

import cv2
import numpy as np

from ..errors import BackgroundError
from .background import IMAGE_EXTS, VIDEO_EXTS, Background, VideoBackground

PLACEMENTS = {  # name -> (person centre x as a fraction of width, scale)
    "corner": (0.84, 0.42),
    "left": (0.17, 0.6),
    "right": (0.83, 0.6),
}


def fit_letterbox(img: np.ndarray, width: int, height: int, fill=(16, 16, 16)) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.empty((height, width, 3), np.uint8)
    out[:] = fill
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


def load_slides(source: Path, dpi: int = 110) -> list[np.ndarray]:
    """Slides as RGB arrays from a PDF (pypdfium2) or a folder of images (sorted by name)."""
    from ..io.image import read_image

    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not files:
            raise BackgroundError(f"no slide images in {source}")
        return [read_image(p) for p in files]
    if source.suffix.lower() == ".pdf":
        try:
            import pypdfium2 as pdfium
        except ImportError:
            raise BackgroundError("PDF slides need pypdfium2: pip install 'backdrop[slides]'") from None
        try:
            pdf = pdfium.PdfDocument(str(source))
            pages = [np.asarray(page.render(scale=dpi / 72).to_pil().convert("RGB")) for page in pdf]
        except Exception as exc:  # pypdfium2 raises PdfiumError and friends
            raise BackgroundError(f"cannot read slides {source.name}: {str(exc).splitlines()[0]}") from None
        if not pages:
            raise BackgroundError(f"no pages in {source.name}")
        return pages
    raise BackgroundError(f"slides must be a PDF, a folder of images or a video: {source}")


class PresenterBackground(Background):
    """Slides behind a scaled, placed person. ``mode`` is ``presenter``."""

    mode = "presenter"

    def __init__(self, source: str | Path, placement: str = "corner", slide_times: list[float] | None = None,
                 fps: float = 30.0):
        self.source = Path(source)
        if not self.source.exists():
            raise BackgroundError(f"slides not found: {self.source}")
        self.video = VideoBackground(self.source) if self.source.suffix.lower() in VIDEO_EXTS else None
        self.slides = None if self.video else load_slides(self.source)
        self.place = parse_placement(placement)
        self.slide_times = sorted(slide_times or [])
        self.fps = fps
        self.current = 0
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def advance(self, step: int = 1) -> int:
        """Next (or previous) slide in live mode; returns the new slide index."""
        if self.slides:
            self.current = int(np.clip(self.current + step, 0, len(self.slides) - 1))
        return self.current

    def slide_index(self, index: int) -> int:
        if self.slide_times and self.slides:
            t = index / self.fps
            return min(len(self.slides) - 1, max(0, bisect.bisect_right(self.slide_times, t) - 1))
        return self.current

    def render(self, index, frame, alpha, small=None):
        h, w = frame.shape[:2]
        if self.video is not None:
            return fit_letterbox(self.video.render(index, frame, alpha), w, h)
        k = self.slide_index(index)
        key = (k, w, h)
        if key not in self._cache:
            self._cache = {key: fit_letterbox(self.slides[k], w, h)}
        return self._cache[key]

    def person_transform(self, alpha: np.ndarray) -> np.ndarray:
        """2x3 affine that scales the frame and puts the person's box at the chosen place."""
        h, w = alpha.shape
        cx_frac, scale, cy_frac = self.place
        ys, xs = np.nonzero(alpha > 0.5)
        if xs.size:
            px = (xs.min() + xs.max()) / 2
            bottom = ys.max()
        else:
            px, bottom = w / 2, h
        tx = cx_frac * w - scale * px
        ty = (cy_frac * h - scale * bottom) if cy_frac is not None else h - scale * (bottom + 1)
        return np.float32([[scale, 0, tx], [0, scale, ty]])

    def describe(self):
        return f"presenter:{self.source.name}"


def parse_placement(text: str) -> tuple[float, float, float | None]:
    """``corner|left|right`` or ``x,y,scale`` (fractions of the frame for the person's centre/bottom)."""
    t = str(text).strip().lower()
    if t in PLACEMENTS:
        x, s = PLACEMENTS[t]
        return x, s, None
    try:
        x, y, s = (float(v) for v in t.split(","))
    except ValueError:
        raise BackgroundError(f"--presenter must be corner, left, right or x,y,scale, not {text!r}") from None
    if not (0 <= x <= 1 and 0 <= y <= 1 and 0.05 <= s <= 1):
        raise BackgroundError("--presenter x,y must be in [0, 1] and scale in [0.05, 1]")
    return x, s, y


def composite_presenter(bg: PresenterBackground, slide: np.ndarray, fg: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    from .composite import blend

    h, w = alpha.shape
    m = bg.person_transform(alpha)
    fg_t = cv2.warpAffine(fg, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a_t = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return blend(fg_t, slide, a_t)
