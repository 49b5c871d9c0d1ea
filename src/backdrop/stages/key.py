"""Chroma key (``--key green|blue|#RRGGBB|auto``): the screen gives the matte, hair-level and soft.

For people who have a green or blue screen the key is far better at hair than any 256-px network:
the alpha comes from how much of the key's hue each full-resolution pixel has, relative to its
brightness (uneven lighting keeps the hue; see ``compose/chroma.py``). The network only guards
it: where the network is sure of the person (its eroded core) the alpha is 1, so a green shirt is
no hole; far from the person (outside its dilated region) the alpha is 0, so objects beside the
screen are not kept. ``auto`` takes the key colour from the old background where the network sees
no person, when that is a strong colour. Spill on the person is removed by ``stages/despill.py``,
which uses this key colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compose.chroma import direction, estimate_key, hue_strength, key_rgb, parse_key
from .base import Opt, Stage, StageSpec

SCREEN = 0.7  # hue strength (as a share of the key's own) at and above which a pixel is screen
PERSON = 0.25  # at and below which it is foreground
CORE = 0.03  # network core: erosion radius as a share of the working frame's long side
REACH = 0.06  # the key counts this far around the network's person (share of the long side)
LUMA_NOISE = 10.0  # grey levels of brightness difference that are noise
LUMA_SPAN = 0.45  # a brightness difference of this share of the screen's is fully foreground


def _disk(shape, share: float) -> np.ndarray:
    r = max(1, round(share * max(shape)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def screen_brightness(small: np.ndarray, screen: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The screen's brightness everywhere (float32 at ``size``), filled in behind the person from
    the screen around them by normalised convolution: an unevenly lit screen stays screen."""
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    m = screen.astype(np.float32)
    sigma = 0.05 * max(grey.shape)
    num = cv2.GaussianBlur(grey * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    level = float(np.median(grey[screen])) if screen.any() else float(grey.mean())
    local = np.where(den > 1e-3, num / np.maximum(den, 1e-3), level).astype(np.float32)
    return cv2.resize(local, size, interpolation=cv2.INTER_LINEAR)


def luma_alpha(frame: np.ndarray, screen_y: np.ndarray) -> np.ndarray:
    """Foreground evidence from brightness alone: much darker or brighter than the screen there.

    Video is 4:2:0: the chroma of thin dark hair strands is the screen's, only the brightness is
    sharp, so hue alone would key dark hair away."""
    y = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.clip((np.abs(y - screen_y) - LUMA_NOISE) / (LUMA_SPAN * np.maximum(screen_y, 16.0)), 0.0, 1.0)


def key_alpha(frame: np.ndarray, key: np.ndarray, screen: np.ndarray | None = None) -> np.ndarray:
    """Alpha (float32 HxW) of ``frame`` against a ``key`` colour: 0 on the screen, 1 off it.

    ``screen`` (RGB pixels known to be screen) calibrates how strong the screen's hue really is
    (a lit screen is rarely the pure key colour) and how bright it is: brightness is floored at
    half the screen's, so dark hair with a green trace stays hair."""
    u = direction(key)
    ref = np.asarray(screen if screen is not None and len(screen) else key[None], np.float32).reshape(-1, 3)
    floor = max(16.0, 0.5 * float(np.median(ref.mean(axis=1))))
    own = float(np.median(hue_strength(ref[None], u, floor)))
    strength = hue_strength(frame, u, floor)
    strength = cv2.GaussianBlur(strength, (3, 3), 0)  # sensor noise, without losing hair
    a = (SCREEN * own - strength) / ((SCREEN - PERSON) * own)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


class KeyStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.fixed = key_rgb(options.key)
        self.auto: np.ndarray | None = None

    def _key(self, fs) -> np.ndarray | None:
        if self.fixed is not None:
            return self.fixed
        found = estimate_key(fs.small, fs.canvas < 0.05)
        if found is not None:  # smooth it: one frame's estimate jitters
            self.auto = found if self.auto is None else 0.8 * self.auto + 0.2 * found
        return self.auto

    def full(self, fs) -> None:
        key = self._key(fs)
        if key is None:
            return  # no screen to key against: the network's matte stands
        fs.extra["key_rgb"] = key
        w, h = fs.size
        person = (fs.canvas > 0.5).astype(np.uint8)
        core = cv2.erode(person, _disk(person.shape, CORE)).astype(np.float32)
        reach = cv2.dilate(person, _disk(person.shape, REACH))
        screen = (fs.canvas < 0.05) & (reach > 0)  # the screen right around the person
        if screen.sum() < 64:
            screen = fs.canvas < 0.05
        core = cv2.resize(cv2.blur(core, (3, 3)), (w, h), interpolation=cv2.INTER_LINEAR)
        reach = cv2.resize(cv2.blur(reach.astype(np.float32), (5, 5)), (w, h), interpolation=cv2.INTER_LINEAR)
        keyed = np.maximum(key_alpha(fs.frame, key, fs.small[screen]),
                           luma_alpha(fs.frame, screen_brightness(fs.small, fs.canvas < 0.05, (w, h))))
        fs.matte = np.maximum(keyed * reach, core)

    def reset(self) -> None:
        self.auto = None


STAGE = StageSpec(
    name="key", phase="full", make=KeyStage,
    summary="a green or blue screen: the key gives a hair-level matte, the network guards it",
    options=[Opt("key", "", "chroma key: green, blue, #RRGGBB or auto (default: off)", raw="", live=True,
                 validator=parse_key, metavar="COLOUR")],
    enabled=lambda o: bool(o.key),
)
