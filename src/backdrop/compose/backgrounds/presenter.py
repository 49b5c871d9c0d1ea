"""Presenter mode: the cut-out person over slides or a screen recording.

For classes and talks the person belongs in front of the material, not in front of their room.
The slides (a PDF, a folder of images, or a video such as a screen recording) fill the output,
fitted without cropping; the person is scaled and placed at a corner or a side so the slide's
centre stays visible, and moved inwards where the placement would cut them at the edge.

Grammar: ``presenter:SOURCE`` or ``presenter:PLACE[;times=T0,T1,...][;size=WxH]:SOURCE`` where
PLACE is ``corner|left|right|x,y,scale``. In a file job the output takes the slides' aspect at the
frame's height (16:9 slides in a 4:3 video get no black bars) unless ``size`` says otherwise, and
slides change at ``times`` (seconds) or, without times, are spread evenly over the video; live,
``advance()`` (keys n/p, ``{"slide": "next"}``) changes them and the output keeps the frame's size.
"""

from __future__ import annotations

import bisect
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ...errors import BackgroundError
from ..composite import blend
from .base import Background, BackgroundKind
from .files import IMAGE_SUFFIXES, VIDEO_INPUT_SUFFIXES
from .video import open_video

if TYPE_CHECKING:
    from ..slides import Slides

log = logging.getLogger(__name__)

PLACEMENTS = {  # name -> (person centre x as a fraction of width, scale)
    "corner": (0.84, 0.42),
    "left": (0.17, 0.6),
    "right": (0.83, 0.6),
}
EDGE_MARGIN = 0.02  # of the output width kept free beside a placed person


def fit_letterbox(img: np.ndarray, width: int, height: int, fill=(16, 16, 16)) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    out = np.empty((height, width, 3), np.uint8)
    out[:] = fill
    x0, y0 = (width - nw) // 2, (height - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    return out


def load_slides(source: Path) -> "Slides":
    """Slides from a PDF (pypdfium2), a folder of images (sorted by name) or one image: counted
    and checked now, rendered when shown (:class:`~backdrop.compose.slides.Slides`)."""
    from ..slides import Slides

    source = Path(source)
    if source.is_dir() or source.suffix.lower() in IMAGE_SUFFIXES or source.suffix.lower() == ".pdf":
        return Slides(source)
    raise BackgroundError(f"slides must be a PDF, a folder of images or a video: {source}")


def parse_placement(text: str) -> tuple[float, float, float | None]:
    """``corner|left|right`` or ``x,y,scale`` (fractions of the frame for the person's centre/bottom)."""
    t = str(text).strip().lower()
    if t in PLACEMENTS:
        x, s = PLACEMENTS[t]
        return x, s, None
    try:
        x, y, s = (float(v) for v in t.split(","))
    except ValueError:
        raise BackgroundError(f"presenter place must be corner, left, right or x,y,scale, not {text!r}") from None
    if not (0 <= x <= 1 and 0 <= y <= 1 and 0.05 <= s <= 1):
        raise BackgroundError("presenter x,y must be in [0, 1] and scale in [0.05, 1]")
    return x, s, y


def parse_slide_times(text: str) -> list[float]:
    """``0,45,120``: seconds at which each slide starts, increasing, from 0 on."""
    try:
        times = [float(t) for t in str(text).split(",")]
    except ValueError:
        raise BackgroundError(f"slide times must be seconds separated by commas: {text!r}") from None
    if any(not math.isfinite(t) or t < 0 for t in times) or any(b <= a for a, b in zip(times, times[1:])):
        raise BackgroundError(f"slide times must be increasing seconds from 0 on: {text!r}")
    return times


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise BackgroundError(f"output size must be WIDTHxHEIGHT, not {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise BackgroundError(f"output size must be between 16x16 and 8192x8192, not {text!r}")
    return w, h


class PresenterBackground(Background):
    """Slides behind a scaled, placed person."""

    def __init__(self, source: str | Path, placement: str = "corner", slide_times: list[float] | None = None,
                 fps: float = 30.0, size: tuple[int, int] | None = None):
        self.source = Path(source)
        if not self.source.exists():
            raise BackgroundError(f"slides not found: {self.source} (presenter mode needs a PDF, a folder of "
                                  "slide images or a video)")
        is_video = self.source.is_file() and self.source.suffix.lower() in VIDEO_INPUT_SUFFIXES
        self.video = open_video(self.source) if is_video else None
        self.slides = None if self.video else load_slides(self.source)
        self.place = parse_placement(placement)
        self.slide_times = list(slide_times or [])
        if self.slides and len(self.slide_times) > len(self.slides):
            raise BackgroundError(f"{len(self.slide_times)} slide times for {len(self.slides)} slides")
        self.fps = fps
        self.size = size  # output (width, height); None: the frame's, or the slides' aspect in files
        self.follow_slides = False
        self.current = 0
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}

    def start(self, *, fps, frames) -> None:
        """A file job: take its frame rate, the slides' aspect, and spread untimed slides evenly."""
        self.fps = float(fps or self.fps)
        self.follow_slides = self.size is None
        if self.slides and len(self.slides) > 1 and not self.slide_times:
            if frames:
                step = frames / self.fps / len(self.slides)
                self.slide_times = [i * step for i in range(len(self.slides))]
                log.info("presenter: %d slides spread evenly, %.1f s each (set times with --slide-times)",
                         len(self.slides), step)
            else:
                log.warning("presenter: %d slides but no --slide-times and no known length: showing slide 1",
                            len(self.slides))

    def aspect(self) -> float:
        if self.slides:
            return self.slides.aspect()
        img = self.video._current
        return img.shape[1] / img.shape[0]

    def output_size(self, w: int, h: int) -> tuple[int, int]:
        """(width, height) of the output for a ``w`` x ``h`` frame."""
        if self.size is not None:
            return self.size
        if self.follow_slides:
            return max(16, 2 * round(h * self.aspect() / 2)), h
        return w, h

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

    def render(self, index, frame, alpha, working=None):
        w, h = self.output_size(frame.shape[1], frame.shape[0])
        if self.video is not None:
            return fit_letterbox(self.video.render(index, frame, alpha), w, h)
        k = self.slide_index(index)
        key = (k, w, h)
        if key not in self._cache:  # only the slide on screen is kept
            self._cache = {key: self.slides.fitted(k, w, h)}
        return self._cache[key]

    def person_transform(self, alpha: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """2x3 affine that scales the frame and puts the person's box at the chosen place, moved
        inwards so no part of the person leaves the output at the sides."""
        h, w = alpha.shape
        ow, oh = out_size or (w, h)
        cx_frac, scale, cy_frac = self.place
        ys, xs = np.nonzero(alpha > 0.5)
        if xs.size:
            x0, x1 = xs.min(), xs.max() + 1
            px = (xs.min() + xs.max()) / 2
            bottom = ys.max()
        else:
            x0, x1, px, bottom = 0, w, w / 2, h
        tx = cx_frac * ow - scale * px
        margin = EDGE_MARGIN * ow
        if scale * (x1 - x0) + 2 * margin <= ow:  # the person fits: keep them whole
            tx = min(max(tx, margin - scale * x0), ow - margin - scale * x1)
        ty = (cy_frac * oh - scale * bottom) if cy_frac is not None else oh - scale * (bottom + 1)
        return np.float32([[scale, 0, tx], [0, scale, ty]])

    def composite(self, fs, adjust, finish):
        slide = self.render(fs.index, fs.frame, fs.matte)
        oh, ow = slide.shape[:2]
        m = self.person_transform(fs.matte, (ow, oh))
        a_t = cv2.warpAffine(fs.matte, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0)
        if (ow, oh) == fs.size:
            adjust(fs, slide)  # brightness matched against the slide behind the person's own pixels
        fg_t = cv2.warpAffine(fs.fg, m, (ow, oh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        return blend(fg_t, slide, a_t)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
        if self.slides is not None:
            self.slides.close()


# -- the grammar -------------------------------------------------------------------------------
def _parse(text: str) -> dict | None:
    head, sep, rest = text.strip().partition(":")
    if head.lower() != "presenter" or not sep or not rest:
        return None
    place, times, size = "corner", None, None
    first, sep, source = rest.partition(":")
    parts = first.split(";")
    try:
        parse_placement(parts[0])
        is_place = True
    except BackgroundError:
        is_place = False
    if not sep or not is_place:  # presenter:SOURCE (a Windows drive letter is no placement)
        source = rest
    else:
        place = parts[0].strip().lower()
        for part in parts[1:]:
            key, _, value = part.partition("=")
            if key.strip() == "times":
                times = parse_slide_times(value)
            elif key.strip() == "size":
                size = parse_size(value)
            else:
                raise BackgroundError(f"presenter takes times=... and size=WxH, not {part!r}")
    return {"source": Path(source).expanduser(), "place": place, "times": times, "size": size}


def format_params(p: dict) -> str:
    head = p["place"]
    if p.get("times"):
        head += ";times=" + ",".join(f"{t:g}" for t in p["times"])
    if p.get("size"):
        head += ";size=%dx%d" % tuple(p["size"])
    return f"presenter:{head}:{p['source']}"


def _files(p: dict) -> list[Path]:
    src = Path(p["source"])
    if src.is_dir():
        return sorted(q for q in src.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
    return [src]


KIND = BackgroundKind(
    name="presenter", help="presenter:[PLACE[;times=T0,T1..][;size=WxH]:]SLIDES", parse=_parse,
    format=format_params, files=_files,
    build=lambda p: PresenterBackground(p["source"], p["place"], p["times"], size=p["size"]),
)
