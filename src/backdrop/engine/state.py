"""The per-frame state the stages pass along (it replaces the old ``MatteParts`` and locals).

Frames are RGB uint8 HxWx3 and mattes float32 HxW in [0, 1] everywhere here. One
:class:`FrameState` is made per frame by the engine; each stage reads and writes the fields of its
phase. ``canvas`` is the matte at working size (``None`` on the raw path, where nothing works at
working size); ``matte`` is the matte at the frame's size once the full phase has run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from ..compose.foreground import apply_correction
from ..resize import downscale
from ..timing import StageTimer


def working_size(w: int, h: int, work_size: int) -> tuple[int, int, float]:
    """(width, height, scale) of the working resolution: long side at most ``work_size``."""
    s = min(1.0, work_size / max(h, w))
    return max(1, round(w * s)), max(1, round(h * s)), s


@dataclass
class FrameState:
    """Everything the stages know about one frame."""

    index: int
    frame: np.ndarray  # RGB uint8 HxWx3, full size
    timer: StageTimer
    work_size: int
    small: np.ndarray | None = None  # the frame at working size, RGB uint8
    grey: np.ndarray | None = None  # ``small`` in grey, float32
    canvas: np.ndarray | None = None  # the matte at working size
    box: tuple[int, int, int, int] | None = None  # the crop the network ran on (None: whole frame)
    skipped: bool = False  # the network did not run: the last matte is reused
    weight: np.ndarray | None = None  # temporal fusion's weight of the past (working size)
    matte: np.ndarray | None = None  # the matte at full size (None in the fused pass, which needs none)
    fg_base: np.ndarray | None = None  # the person's colours before ``corrections`` (see ``fg``)
    extra: dict[str, Any] = field(default_factory=dict)  # for stages that need to pass more
    corrections: list[np.ndarray] = field(default_factory=list)  # working-size colour corrections

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
        return self.frame.shape[1], self.frame.shape[0]

    def prepare_working(self) -> None:
        """The working-size frame and its grey version (the work phase's inputs)."""
        w, h = self.size
        cw, ch, s = working_size(w, h, self.work_size)
        with self.timer("downscale"):
            self.small = self.frame if s == 1.0 else downscale(self.frame, cw, ch)
            self.grey = cv2.cvtColor(self.small, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def working_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """(frame, matte) at working size for compose stages; made from the full-size matte on
        the raw path, where the work phase did not run."""
        if self.small is not None and self.canvas is not None:
            return self.small, self.canvas
        w, h = self.size
        cw, ch, s = working_size(w, h, self.work_size)
        with self.timer("downscale"):
            small = downscale(self.frame, cw, ch) if s < 1 else self.frame
            small_a = downscale(self.matte, small.shape[1], small.shape[0])
        self.small, self.canvas = small, small_a
        return small, small_a
