"""Clean plate (Background Matting, "the world is your green screen"): the scene without the person.

With a static camera and a picture of the empty scene (``--plate IMG``, or live: step out of the
frame and press ``b`` / send ``{"plate": "learn"}``), the difference to the plate is a near
green-screen matte: soft where hair lets the scene through, crisp where a shirt meets the wall,
whatever the network thinks of that shirt's colour. The network's semantics guard it as for the
chroma key: its sure core is person, and nothing far from its person counts (a chair moved behind
them). When the camera or the light moved, the network's sure background no longer matches the
plate; the stage then steps aside (the network's matte stands) until the plate fits again or a new
one is learnt.

A plate shot apart from the video is never the same exposure, white balance or noise as the
frames (held-out footage: a plate 2 % brighter with sensor noise made ``--plate`` worse than the
network alone, alpha MAD 12.2 vs 7.4). So each frame is first matched to the plate on the
network's sure background (:func:`fit_photometry`: a per-channel gain and offset, fitted
robustly), and the difference counts only above the noise measured there (:class:`Photometry`)
instead of above a fixed level.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..compose.backgrounds import cover_resize
from ..errors import InputError, OptionError
from .base import Opt, Stage, StageSpec
from .guard import CORE, REACH, disk, guarded_matte, person_core

log = logging.getLogger(__name__)

LEARN = "learn"
LEARN_FRAMES = 10  # frames averaged into a learnt plate (sensor noise down by ~3x)
NOISE = 4.0  # colour difference (grey levels, blurred, largest channel) that is always noise
NOISE_MEDIANS = 2.0  # ... and at least this many times its median on the sure background (docs/quality.md)
FLOOR_MAX = 16.0  # a larger "noise" floor is no noise but another view (measured: 4-7.7 at sigma 1-3, a turned camera 68-92)
SPAN = 18.0  # from the noise level this much more is entirely foreground (was NOISE 6 -> SOLID 24)
MOVED = 0.25  # share of the sure background that differs from the plate: camera or light moved
SHADOW = (0.3, 0.97)  # a pixel this much darker than the plate, in the plate's own colour, may be a cast shadow
SHADOW_CHROMA = 0.3  # ... when its channels' ratios to the plate (5x5 means) spread less than this share of their mean
# (one-by-one clip, the blots at the feet: 0.15 caught 32-44 % of them, 0.3 72-81 %; it costs the
# shadowless tuning clips 0.1-0.6 MAD x1e3, docs/quality.md)
SAMPLES = 20000  # sure-background pixels the photometric fit uses
FOLLOW = 0.7  # weight of the last frame's photometry (an estimate jitters from frame to frame)
ASPECT = 0.02  # a plate whose aspect differs more than this is another view, not another size
SURE_BACKGROUND = 0.05  # network matte below which (eroded) a pixel is background for the fit


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


def check_learnable(options, frames: int, what: str) -> None:
    """``--plate learn`` in a file job takes the first ``LEARN_FRAMES`` frames as the empty scene:
    an :class:`OptionError` when ``what`` (a picture: ``frames`` 1; a clip of ``frames`` frames, 0
    when unknown) has no frame left after them, instead of using the network alone unasked."""
    if getattr(options, "plate", "") != LEARN or frames <= 0 or frames > LEARN_FRAMES:
        return
    has = "is one picture" if frames == 1 else f"has {frames} frames"
    raise OptionError(f"{{option}} learn takes the first {LEARN_FRAMES} frames of a video as the empty scene, "
                      f"and {what} {has}: give a picture of the empty scene instead ({{option}} IMG)", option="plate")


@dataclass
class Photometry:
    """How a frame's colours relate to the plate's: ``frame ~ gain * plate + offset`` per channel
    (RGB), and the noise ``floor`` (grey levels) of the blurred difference once matched."""

    gain: np.ndarray
    offset: np.ndarray
    floor: float = NOISE * 3

    @classmethod
    def identity(cls) -> Photometry:
        return cls(np.ones(3, np.float32), np.zeros(3, np.float32))

    def match(self, plate: np.ndarray) -> np.ndarray:
        """The plate as this frame's camera would see it (float32)."""
        return plate.astype(np.float32) * self.gain + self.offset

    def follow(self, new: Photometry) -> Photometry:
        f = FOLLOW
        return Photometry(f * self.gain + (1 - f) * new.gain, f * self.offset + (1 - f) * new.offset,
                          f * self.floor + (1 - f) * new.floor)


def fit_photometry(frame: np.ndarray, plate: np.ndarray, sure: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel gain and offset taking ``plate`` to ``frame`` (RGB uint8, same size) on the
    pixels ``sure`` marks: least squares, refitted once without the pixels off by more than three
    robust sigmas (a moved chair, a shadow), and without clipped ones. None: too few pixels."""
    idx = np.flatnonzero(sure)
    if len(idx) < 500:
        return None
    idx = idx[:: max(1, len(idx) // SAMPLES)]
    x = plate.reshape(-1, 3)[idx].astype(np.float32)
    y = frame.reshape(-1, 3)[idx].astype(np.float32)
    gain, offset = np.ones(3, np.float32), np.zeros(3, np.float32)
    for c in range(3):
        xc, yc = x[:, c], y[:, c]
        keep = (xc > 3) & (xc < 252) & (yc > 3) & (yc < 252)
        for _ in range(2):
            if keep.sum() < 200 or np.ptp(xc[keep]) < 8:
                g = 1.0
                o = float(np.median(yc[keep] - xc[keep])) if keep.any() else 0.0
                break
            with warnings.catch_warnings():  # a near-flat wall is poorly conditioned: the clip below bounds it
                warnings.simplefilter("ignore", np.exceptions.RankWarning)
                g, o = np.polyfit(xc[keep], yc[keep], 1)
            r = yc - (g * xc + o)
            sigma = 1.4826 * float(np.median(np.abs(r[keep] - np.median(r[keep])))) + 0.5
            keep &= np.abs(r) < 3 * sigma
        gain[c], offset[c] = np.clip(g, 0.7, 1.4), np.clip(o, -40, 40)
    return gain, offset


def difference(frame: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Largest channel of the colour difference (float32 HxW, grey levels), lightly blurred
    against noise. (Blurring each signed channel first cancels hair strands lighter and darker
    than the wall: sliding-clip MAD 8.1 -> 9.2.)"""
    d = np.abs(frame.astype(np.float32) - matched).max(axis=2)
    return cv2.GaussianBlur(d, (3, 3), 0)


def plate_alpha(frame: np.ndarray, plate: np.ndarray, photometry: Photometry | None = None) -> np.ndarray:
    """Foreground evidence (float32 HxW in [0, 1]) from the difference of ``frame`` to ``plate``
    (both RGB uint8) matched by ``photometry``: 0 up to its noise floor, 1 from ``SPAN`` above."""
    p = photometry or Photometry.identity()
    diff = difference(frame, p.match(plate))
    return np.clip((diff - p.floor) * (1.0 / SPAN), 0.0, 1.0)


def shadow_like(frame: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Bool HxW: darker than the (matched) plate by a common factor in every channel, as a cast
    shadow is (the people's own shadows on the floor of the real one-by-one clip kept a dark blot
    at their feet). Grey clothes over a white wall look the same, so only where the network is
    sure nobody is do these pixels take the network's matte (:class:`PlateStage`)."""
    ratio = cv2.blur(frame.astype(np.float32), (5, 5)) / np.maximum(cv2.blur(matched, (5, 5)), 8.0)  # wood grain, 4:2:0
    dim = ratio.mean(axis=2)
    spread = ratio.max(axis=2) - ratio.min(axis=2)
    return (dim > SHADOW[0]) & (dim < SHADOW[1]) & (spread < SHADOW_CHROMA * dim)


def noise_floor(diff: np.ndarray, sure: np.ndarray) -> float | None:
    """The noise level of a difference map (grey levels) from its median on the sure background,
    at most ``FLOOR_MAX``: a larger median is the scene changing, which must stay visible."""
    values = diff[sure]
    if values.size < 200:
        return None
    return min(FLOOR_MAX, max(NOISE, NOISE_MEDIANS * float(np.median(values[:: max(1, values.size // SAMPLES)]))))


def empty_scene(same: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Where the frame is the empty scene (``same``: no difference to the plate above noise) in one
    piece with the network's sure ``background``: there the network's core does not count (it
    called a patch of the empty floor a person). A shirt the wall's colour inside the person is
    kept: the person's rim around it differs from the plate."""
    n, labels = cv2.connectedComponents(same.astype(np.uint8), connectivity=4)
    joined = np.zeros(n, bool)
    joined[labels[background & same]] = True
    joined[0] = False
    return joined[labels]


def aspect_of(w: int, h: int) -> str:
    return f"{w}x{h} (aspect {w / h:.2f})"


class PlateStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.source: np.ndarray | None = None
        self.learning: list[np.ndarray] = []
        if options.plate != LEARN:
            from ..io.image import read_image

            self.source = read_image(Path(options.plate))
        self._sized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray] | None] = {}
        self.fits = True
        self.photometry: Photometry | None = None
        self.measured = False  # the photometry's noise floor was measured at full size

    def _learn(self, fs) -> None:
        if self.learning and self.learning[0].shape != fs.frame.shape:
            log.warning("clean plate: the camera's picture size changed to %dx%d while learning; learning again",
                        *fs.size)
            self.learning = []
        self.learning.append(fs.frame.astype(np.float32))
        if len(self.learning) == LEARN_FRAMES:
            self.source = np.clip(np.mean(self.learning, axis=0) + 0.5, 0, 255).astype(np.uint8)
            self.learning, self._sized, self.photometry, self.fits, self.measured = [], {}, None, True, False
            log.info("clean plate learnt from %d frames", LEARN_FRAMES)

    def _plate(self, fs) -> tuple[np.ndarray, np.ndarray] | None:
        """(plate at frame size, plate at working size), or None while learning or when the plate
        shows another view than the frames (another aspect)."""
        if self.source is None:
            self._learn(fs)
            return None
        w, h = fs.size
        if (w, h) not in self._sized:
            ph, pw = self.source.shape[:2]
            if abs((pw / ph) / (w / h) - 1) > ASPECT:
                message = (f"the clean plate is {aspect_of(pw, ph)} and the frames are {aspect_of(w, h)}: "
                           "a plate must show the camera's whole view (same aspect, any size)")
                if not self.context.live:
                    raise InputError(message)
                log.warning("%s; using the network alone%s", message,
                            " until the camera's aspect matches" if self.options.plate != LEARN
                            else " (learn it again)")
                self._sized = {(w, h): None}
            else:
                full = cover_resize(self.source, w, h)
                self._sized = {(w, h): (full, cv2.resize(full, fs.work_frame.shape[1::-1],
                                                         interpolation=cv2.INTER_AREA))}
                self.photometry, self.measured = None, False
        return self._sized[(w, h)]

    def _match(self, fs, small_plate: np.ndarray, sure_bg: np.ndarray) -> Photometry:
        """This frame's photometry against the plate (fitted on the sure background, followed over
        frames), and whether the plate still fits: the share of the sure background that differs
        more than noise from the matched plate."""
        fit = fit_photometry(fs.work_frame, small_plate, sure_bg)
        last = self.photometry or Photometry.identity()
        p = last if fit is None else Photometry(*fit, last.floor)
        if fit is not None:
            diff = difference(fs.work_frame, p.match(small_plate))
            floor = noise_floor(diff, sure_bg)
            moved = float((diff[sure_bg] > (floor or p.floor) + SPAN / 2).mean())
            fits = moved < MOVED
            if fits != self.fits:
                log.warning("clean plate %s", "fits again" if fits else
                            f"no longer fits ({moved:.0%} of the background changed): camera or light moved; "
                            "using the network alone")
            self.fits = fits
        self.photometry = p if self.photometry is None or fit is None else self.photometry.follow(p)
        return self.photometry

    def full(self, fs) -> None:
        plates = self._plate(fs)
        if plates is None:
            fs.plate_fits = False if self.source is not None else None
            return
        full_plate, small_plate = plates
        person, core = person_core(fs.work_matte)
        sure_bg = cv2.erode((fs.work_matte < SURE_BACKGROUND).astype(np.uint8), disk(person.shape, CORE)) > 0
        photometry = self._match(fs, small_plate, sure_bg)
        fs.plate_fits = self.fits
        if not self.fits:
            return
        reach = cv2.dilate(person, disk(person.shape, REACH))

        def evidence(box, up):
            x0, y0, x1, y1 = box
            matched = photometry.match(full_plate[y0:y1, x0:x1])
            diff = difference(fs.frame[y0:y1, x0:x1], matched)
            floor = noise_floor(diff, up(sure_bg) > 0.99)  # the noise at full size, where it is measured
            if floor is not None:
                photometry.floor = floor if not self.measured else FOLLOW * photometry.floor + (1 - FOLLOW) * floor
                self.measured = True
            alpha = np.clip((diff - photometry.floor) * (1.0 / SPAN), 0.0, 1.0)
            network = up(fs.work_matte)
            shadow = shadow_like(fs.frame[y0:y1, x0:x1], matched) & (network < SURE_BACKGROUND)
            alpha[shadow] = network[shadow]
            return alpha, empty_scene(alpha <= 0, up(sure_bg) > 0.99)

        fs.matte = guarded_matte(fs.size, reach, core, evidence)


STAGE = StageSpec(
    name="plate", phase="full", make=PlateStage,
    reads=("frame", "size", "work_frame", "work_matte"), writes=("matte", "plate_fits"),
    summary="static camera: the difference to a clean plate gives near green-screen edges",
    options=[Opt("plate", "", "clean plate: a picture of the scene without the person (static camera, any size "
                 "of the same view); 'learn' takes the first frames (live: the next ones) as the empty scene",
                 raw="", live=True, validator=check_plate, metavar="IMG", repeatable=(LEARN,), names_files=True)],
    enabled=lambda o: bool(o.plate),
)
