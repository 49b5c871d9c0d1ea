"""The per-frame state the stages pass along (it replaces the old ``MatteParts`` and locals).

Frames are RGB uint8 HxWx3 and mattes float32 HxW in [0, 1] everywhere here (a file job may hand
in its decoded YUV planes instead, a :class:`~backdrop.planar.Planar`: then ``frame``, the RGB
frame, is made only if a stage asks for it, and the fused pass blends the planes). One
:class:`FrameState` is made per frame by the engine; each stage reads and writes the fields it
declares (``StageSpec.reads``/``writes``, checked when a pipeline is built: ``engine/contract.py``).
``work_frame``/``work_grey``/``work_matte`` are the frame and matte at working size (``None`` on the
raw path, where nothing works at working size); ``matte`` is the matte at the frame's size once the
full phase has run. There is no untyped side channel: what one stage hands another is a field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np

from ..compose.foreground import apply_correction
from ..planar import Y_TO_GREY, Planar
from ..resize import downscale
from ..timing import StageTimer


def box_cells(box: tuple[int, int, int, int], size: tuple[int, int], grid: tuple[int, int]
              ) -> tuple[int, int, int, int]:
    """The cells (x0, y0, x1, y1) of a working-size grid ``grid`` (w, h) that a box of the frame
    (``size`` (w, h)) covers: where the network's matte of that box is pasted."""
    x0, y0, x1, y1 = box
    sx, sy = grid[0] / size[0], grid[1] / size[1]
    cx0, cy0 = int(round(x0 * sx)), int(round(y0 * sy))
    return cx0, cy0, max(cx0 + 1, int(round(x1 * sx))), max(cy0 + 1, int(round(y1 * sy)))


def working_size(w: int, h: int, work_size: int) -> tuple[int, int, float]:
    """(width, height, scale) of the working resolution: long side at most ``work_size``."""
    s = min(1.0, work_size / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s)), s


@dataclass
class FrameState:
    """Everything the stages know about one frame (RGB uint8 frames, float32 [0, 1] mattes)."""

    index: int
    image: Any  # the frame as it came: RGB uint8 HxWx3, or a Planar (file jobs), full size
    timer: StageTimer
    work_size: int
    # the working size (long side ``work_size``): the network phase's inputs and its matte
    work_frame: np.ndarray | None = None  # the frame at working size, RGB uint8
    work_grey: np.ndarray | None = None  # ``work_frame`` in grey, float32 0..255
    work_matte: np.ndarray | None = None  # the matte at working size, float32 [0, 1]
    skipped: bool = False  # the network did not run: the last matte is reused
    past_weight: np.ndarray | None = None  # temporal fusion's weight of the past (working size)
    # a matting model's own results (RVM): full-size alpha, its working-size copy, the person's colours
    model_alpha: np.ndarray | None = None
    model_alpha_small: np.ndarray | None = None
    model_fg: np.ndarray | None = None
    # the full size
    matte: np.ndarray | None = None  # the matte at full size (None in the fused pass, which needs none)
    matte_source: str | None = None  # how ``matte`` was made: "bilinear", "model" or "refined"
    # refine's (A, b) at working size and the network's bounds (lo, hi) or None (stages/refine.py)
    guided_coefficients: tuple | None = None
    key_colour: np.ndarray | None = None  # the chroma key's RGB (float32 3), for despill
    plate_fits: bool | None = None  # the clean plate still matches the scene (None: no plate)
    people: list = field(default_factory=list)  # the tracked people (tracking.people.Person), stable ids
    # the person's colours
    fg_base: np.ndarray | None = None  # the person's colours before ``corrections`` (see ``fg``)
    corrections: list[np.ndarray] = field(default_factory=list)  # working-size colour corrections

    def __post_init__(self) -> None:
        planar = isinstance(self.image, Planar)
        self.planar: Planar | None = self.image if planar else None
        self._rgb: np.ndarray | None = None if planar else self.image

    @property
    def frame(self) -> np.ndarray:
        """The frame in RGB uint8 HxWx3 (for planar input converted once, when first asked)."""
        if self._rgb is None:
            with self.timer("to_rgb"):
                self._rgb = self.planar.to_rgb()
        return self._rgb

    def crop_rgb(self, box: tuple[int, int, int, int] | None) -> np.ndarray:
        """RGB of ``box`` (x0, y0, x1, y1) of the frame, None: all of it (the network's input);
        for planar input only that part is converted."""
        if self._rgb is None:
            return self.planar.crop_rgb(box)
        if box is None:
            return self._rgb
        x0, y0, x1, y1 = box
        return self._rgb[y0:y1, x0:x1]

    def network_crop(self, box: tuple[int, int, int, int] | None, input_size: tuple[int, int]) -> np.ndarray:
        """The network's RGB input for ``box`` (None: the whole frame). For planar frames it is
        cut from the working-size image when that still has at least the network's ``input_size``
        (h, w) pixels there (the network sees the same picture, shrunk from 512 px instead of from
        the full size), else converted from the full-size planes: converting a whole 4K frame to
        RGB only to shrink it to 256x256 cost 3 ms a frame and 24 MB."""
        if self._rgb is None and self.work_frame is not None:
            w, h = self.size
            sh, sw = self.work_frame.shape[:2]
            cx0, cy0, cx1, cy1 = box_cells(box or (0, 0, w, h), (w, h), (sw, sh))  # where it goes
            if cy1 - cy0 >= input_size[0] and cx1 - cx0 >= input_size[1]:
                return self.work_frame[cy0:cy1, cx0:cx1]
        return self.crop_rgb(box)

    def grey_crop(self, rect: tuple[int, int, int, int]) -> np.ndarray:
        """``cv2.COLOR_RGB2GRAY`` of ``rect`` of the frame, uint8 (for planar input: from luma)."""
        x0, y0, x1, y1 = rect
        if self._rgb is None:
            return cv2.LUT(self.planar.y[y0:y1, x0:x1], Y_TO_GREY)
        return cv2.cvtColor(self._rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)

    @property
    def fg(self) -> np.ndarray | None:
        """The person's colours for compositing (decontaminated frame): ``fg_base`` with the
        pending working-size ``corrections`` applied at full size (once, when first read). The
        fused pass applies them only where the person's edge is (``engine/fused.py``)."""
        if self.corrections:
            fg = self.frame if self.fg_base is None else self.fg_base
            for corr in self.corrections:
                fg = apply_correction(fg, corr)
            self.corrections, self.fg_base = [], fg
        return self.fg_base

    @fg.setter
    def fg(self, value: np.ndarray | None) -> None:
        self.corrections, self.fg_base = [], value

    def add_correction(self, corr: np.ndarray) -> None:
        """Add a colour correction made at working size (int16 levels, or float32 rounded after
        upsampling) to the person's colours; it is upsampled bilinearly and added, saturating."""
        self.corrections.append(corr)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frame."""
        if self.planar is not None:
            return self.planar.size
        return self.image.shape[1], self.image.shape[0]

    def prepare_working(self) -> None:
        """The working-size frame and its grey version (the work phase's inputs)."""
        w, h = self.size
        cw, ch, s = working_size(w, h, self.work_size)
        with self.timer("downscale"):
            if s == 1.0:
                self.work_frame = self.frame
            elif self._rgb is None:
                self.work_frame = self.planar.small_rgb(cw, ch)
            else:
                self.work_frame = downscale(self._rgb, cw, ch)
            self.work_grey = cv2.cvtColor(self.work_frame, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def working_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame, matte) at working size for compose stages; made from the full-size matte on
        the raw path, where the work phase did not run."""
        if self.work_frame is not None and self.work_matte is not None:
            return self.work_frame, self.work_matte
        w, h = self.size
        cw, ch, s = working_size(w, h, self.work_size)
        with self.timer("downscale"):
            work_frame = downscale(self.frame, cw, ch) if s < 1 else self.frame
            work_matte = downscale(self.matte, work_frame.shape[1], work_frame.shape[0])
        self.work_frame, self.work_matte = work_frame, work_matte
        return work_frame, work_matte


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(FrameState) if f.name not in ("timer", "work_size")) + (
    "frame", "size", "fg")
"""The names a stage may declare in ``reads``/``writes``/``optional``: the dataclass fields and the
properties made from them (``frame``: RGB of ``image``; ``size``; ``fg``: the person's colours)."""
