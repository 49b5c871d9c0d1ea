"""The background contract: what a kind of background declares, and what its objects do.

A kind (one file each in this folder) declares once: its name, how its text looks in the one
``--background`` grammar (parse and format), what the pipeline outputs with it (``rgb``, ``rgba``
or ``gray``), whether it can run live, and which files it refers to (the batch hash reads them).
Its :class:`Background` object renders RGB uint8 HxWx3 for each frame and composites the person
(RGB uint8 frame, float32 HxW matte in [0, 1]) over it: presenter, transparent and matte output
are kinds, not string switches in the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...planar import Planar
from ..composite import blend

PIXEL_FORMATS = ("rgb", "rgba", "gray")


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
    """What goes behind the person. Subclasses render; most composite with the default blend."""

    pixel_format = "rgb"
    needs_frame = False  # render() wants the (working-size) frame and matte: blur
    uses_foreground = True  # compose stages (decontamination) prepare the person's colours
    spec: Any = None  # the BackgroundSpec it was built from, when there was one

    def start(self, *, fps: float | None, frames: int | None) -> None:
        """A file job begins: its frame rate and frame count (None when unknown)."""

    def render(self, index: int, frame: np.ndarray, alpha: np.ndarray, working=None) -> np.ndarray:
        """Background for output frame ``index`` at the frame's size (RGB uint8 HxWx3).

        ``working`` is an optional ``(frame, matte)`` pair at working size that the pipeline
        already has; backgrounds that need the frame (blur) use it to avoid a full-size pass.
        """
        raise NotImplementedError  # pragma: no cover

    def composite(self, fs, adjust: Callable, finish: Callable) -> np.ndarray:
        """The output for frame state ``fs`` (``fs.fg`` over this background with ``fs.matte``).

        ``adjust(fs, bg)`` runs the compose stages that look at the new background before the
        blend (colour match), ``finish(fs, out, bg)`` those after it (light wrap).
        """
        bg = self.render(fs.index, fs.frame, fs.matte, working=fs.working_pair() if self.needs_frame else None)
        adjust(fs, bg)
        return finish(fs, blend(fs.fg, bg, fs.matte), bg)

    def render_planar(self, fs) -> Planar:
        """:meth:`render` as YUV 4:2:0 planes for the planar fused pass (``engine/fused.py``),
        which never makes the RGB frame: ``render`` gets a stand-in of the frame's shape (the
        fused pass runs only where it needs no more, see :meth:`fuses`). Kinds whose picture does
        not change (image, colour) keep their planes themselves."""
        w, h = fs.size
        shape_only = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (h, w, 3))
        return Planar.from_rgb(self.render(fs.index, shape_only, None,
                                           working=fs.working_pair() if self.needs_frame else None))

    def fuses(self, fs) -> bool:
        """Whether the fused pass (``engine/fused.py``) can composite over this background: the
        plain blend of :meth:`composite`, RGB out, and :meth:`render` needs no full-size matte."""
        return type(self).composite is Background.composite and self.pixel_format == "rgb"

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.spec.format() if self.spec is not None else type(self).__name__


def no_files(params: dict) -> list[Path]:
    return []


@dataclass(frozen=True)
class BackgroundKind:
    """The declaration of a kind of background (see the module docstring)."""

    name: str
    help: str  # its grammar, for --background help and errors: "#RRGGBB"
    parse: Callable[[str], dict | None]  # text -> params, None when the text is not this kind
    format: Callable[[dict], str]  # params -> the text that parses back to them
    build: Callable[[dict], Background]
    pixel_format: str = "rgb"  # what its composite is: rgb (HxWx3), rgba (HxWx4) or gray (HxW)
    live: bool = True
    files: Callable[[dict], list[Path]] = field(default=no_files)

    def __post_init__(self) -> None:
        if self.pixel_format not in PIXEL_FORMATS:
            raise ValueError(f"background kind {self.name}: pixel_format must be one of {PIXEL_FORMATS}")
