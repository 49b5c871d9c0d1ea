"""Clean plate (Background Matting, "the world is your green screen"): the scene without the person.

With a static camera and a picture of the empty scene (``--plate IMG``, or live: step out of the
frame and press ``b`` / send ``{"plate": "learn"}``), the difference to the plate is a near
green-screen matte: soft where hair lets the scene through, crisp where a shirt meets the wall,
whatever the network thinks of that shirt's colour. The network's semantics guard it as for the
chroma key: its sure core is person, and nothing far from its person counts (a chair moved behind
them). When the camera or the light moved, the network's sure background no longer matches the
plate; the stage then steps aside (the network's matte stands) until the plate fits again or a new
one is learnt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..compose.backgrounds import cover_resize
from ..errors import OptionError
from .base import Opt, Stage, StageSpec
from .guard import CORE, REACH, disk, guarded_matte, person_core

log = logging.getLogger(__name__)

LEARN = "learn"
LEARN_FRAMES = 10  # frames averaged into a learnt plate (sensor noise down by ~3x)
NOISE = 6.0  # colour difference (max over channels, grey levels) that is noise (measured: 12 -> 6, MAD 10.5 -> 8.0)
SOLID = 24.0  # ... from which a pixel is entirely foreground
MOVED = 0.25  # share of the sure background that differs from the plate: camera or light moved


def check_plate(value) -> str:
    """``""`` (off), ``learn`` (learn from the next frames: live) or an image file."""
    if not isinstance(value, str):
        raise OptionError(f"{{option}} must be an image file or 'learn', got {str(value)[:40]!r}", option="plate")
    text = value.strip()
    if text in ("", LEARN):
        return text
    from ..io.image import IMAGE_SUFFIXES

    path = Path(text).expanduser()
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise OptionError(f"{{option}} must be a picture of the empty scene (.jpg/.png...), not {text[:60]!r}",
                          option="plate")
    if not path.is_file():
        raise OptionError(f"{{option}} not found: {path}", option="plate")
    return str(path)


_LUT = np.clip((np.arange(256, dtype=np.float32) - NOISE) / (SOLID - NOISE), 0.0, 1.0)
_LUT8 = np.round(_LUT * 255).astype(np.uint8)


def plate_alpha(frame: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Foreground evidence (float32 HxW) from the colour difference to the plate (largest channel
    difference, lightly blurred against noise; in 8 bits and a look-up table: ~4x cheaper)."""
    d = cv2.absdiff(frame, plate)
    diff = cv2.max(cv2.max(d[..., 0], d[..., 1]), d[..., 2])
    diff = cv2.GaussianBlur(diff, (3, 3), 0)
    return cv2.LUT(diff, _LUT8).astype(np.float32) * (1.0 / 255.0)


class PlateStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.source: np.ndarray | None = None
        self.learning: list[np.ndarray] = []
        if options.plate == LEARN:
            self.learning = []
        else:
            from ..io.image import read_image

            self.source = read_image(Path(options.plate))
        self._sized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.fits = True

    def _plate(self, fs) -> tuple[np.ndarray, np.ndarray] | None:
        """(plate at frame size, plate at working size), or None while learning."""
        if self.source is None:
            if len(self.learning) < LEARN_FRAMES:
                self.learning.append(fs.frame.astype(np.float32))
                if len(self.learning) == LEARN_FRAMES:
                    self.source = np.clip(np.mean(self.learning, axis=0) + 0.5, 0, 255).astype(np.uint8)
                    self.learning = []
                    log.info("clean plate learnt from %d frames", LEARN_FRAMES)
                return None
        w, h = fs.size
        if (w, h) not in self._sized:
            full = cover_resize(self.source, w, h)
            self._sized = {(w, h): (full, cv2.resize(full, fs.work_frame.shape[1::-1], interpolation=cv2.INTER_AREA))}
        return self._sized[(w, h)]

    def full(self, fs) -> None:
        plates = self._plate(fs)
        if plates is None:
            return
        full_plate, small_plate = plates
        person, core = person_core(fs.work_matte)
        sure_bg = cv2.erode((fs.work_matte < 0.05).astype(np.uint8), disk(person.shape, CORE)) > 0
        if sure_bg.sum() > 0.05 * sure_bg.size:
            moved = float((plate_alpha(fs.work_frame, small_plate)[sure_bg] > 0.5).mean())
            fits = moved < MOVED
            if fits != self.fits:
                log.warning("clean plate %s", "fits again" if fits else
                            f"no longer fits ({moved:.0%} of the background changed): camera or light moved; "
                            "using the network alone")
            self.fits = fits
        fs.plate_fits = self.fits
        if not self.fits:
            return
        reach = cv2.dilate(person, disk(person.shape, REACH))

        def evidence(box, up):
            x0, y0, x1, y1 = box
            return plate_alpha(fs.frame[y0:y1, x0:x1], full_plate[y0:y1, x0:x1])

        fs.matte = guarded_matte(fs.size, reach, core, evidence)


STAGE = StageSpec(
    name="plate", phase="full", make=PlateStage,
    reads=("frame", "size", "work_frame", "work_matte"), writes=("matte", "plate_fits"),
    summary="static camera: the difference to a clean plate gives near green-screen edges",
    options=[Opt("plate", "", "clean plate: a picture of the scene without the person (static camera); "
                 "live: 'learn' takes the next frames", raw="", live=True, validator=check_plate,
                 metavar="IMG", repeatable=(LEARN,), names_files=True)],
    enabled=lambda o: bool(o.plate),
)
