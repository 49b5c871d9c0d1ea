"""Chroma key (``--key green|blue|#RRGGBB|auto``): the screen gives the matte, hair-level and soft.

For people who have a green or blue screen the key is far better at hair than any 256-px network:
the alpha comes from how much of the key's hue each full-resolution pixel has, relative to its
brightness (uneven lighting keeps the hue; see ``compose/chroma.py``); that brightness is taken
at full size from the pixels that keep the screen's hue, so a fold's crease and a cast shadow stay
screen (:func:`fine_screen_brightness`), and a soft pixel is read as a mix of the screen and the
person's own hue nearby (:func:`person_hue`). The network only guards
it: where the network is sure of the person (its eroded core) the alpha is 1, so a green shirt is
no hole; far from the person (outside its dilated region) the alpha is 0, so objects beside the
screen are not kept. ``auto`` takes the key colour from the old background where the network sees
no person, when that is a strong colour. Spill on the person is removed by ``stages/despill.py``,
which uses this key colour.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..compose.chroma import direction, estimate_key, key_rgb, parse_key, spill_colour
from .base import Opt, Stage, StageSpec
from .guard import CORE, REACH, disk, guarded_matte, person_core

SCREEN = 0.97  # hue strength (as a share of the screen's own) at and above which a pixel is screen
PERSON = 0.03  # ... and at and below which (above the person's own, see person_hue) it is foreground
# 0.92/0.08 -> 0.97/0.03 with the fine screen and the person's hue: 40 tuning pictures of green
# screens with a fold and a shadow, MAD 12.7 -> 10.8 (docs/quality.md)
HUED = 0.8  # a pixel with this share of the screen's hue in its own brightness is screen (a fold or a shadow keeps the hue)
FINE = 0.01  # the fine screen brightness: blur radius, share of the long side (a fold's crease is ~1 % wide)
HAIR = 0.02  # ... taken this far (share of the long side) from the network's person: loose hair is no screen
LUMA_NOISE = 10.0  # grey levels of brightness difference that are noise
LUMA_SPAN = 0.8  # a brightness difference of this share of the screen's is fully foreground


def screen_brightness(small: np.ndarray, screen: np.ndarray) -> np.ndarray:
    """The screen's brightness everywhere (float32, working size), filled in behind the person
    from the screen around them by normalised convolution: an unevenly lit screen stays screen."""
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    m = screen.astype(np.float32)
    sigma = 0.05 * max(grey.shape)
    num = cv2.GaussianBlur(grey * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    level = float(np.median(grey[screen])) if screen.any() else float(grey.mean())
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), level).astype(np.float32)


def luma_alpha(frame: np.ndarray, screen_y: np.ndarray) -> np.ndarray:
    """Foreground evidence from brightness alone: much darker or brighter than the screen there.

    Video is 4:2:0: the chroma of thin dark hair strands is the screen's, only the brightness is
    sharp, so hue alone would key dark hair away."""
    y = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.clip((np.abs(y - screen_y) - LUMA_NOISE) / (LUMA_SPAN * np.maximum(screen_y, 16.0)), 0.0, 1.0)


def normalised_blur(values: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(weighted mean of ``values`` around each pixel, the weight there): normalised convolution."""
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    num = cv2.GaussianBlur(values * weight, (0, 0), sigma)
    return num / np.maximum(den, 1e-3), den


def fine_screen_brightness(frame: np.ndarray, u: np.ndarray, own: float, coarse: np.ndarray,
                           away: np.ndarray) -> np.ndarray:
    """The screen's brightness at the frame's size (float32): the pixels that are screen by their
    own hue (``HUED``; a crease or a cast shadow darkens the cloth but keeps its hue) and ``away``
    from the person, averaged over ``FINE`` of the size; ``coarse`` (the working-size estimate,
    brought to this size) where too few are near. The coarse estimate alone is 5 % of the size
    wide: a fold's dark crease and a shadow beside the person then read as foreground (docs/quality.md)."""
    y = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    hue = frame.astype(np.float32) @ u
    screen = ((hue >= HUED * own * np.maximum(y, 16.0)) & (y >= 16) & away).astype(np.float32)
    fine, den = normalised_blur(y, screen, max(1.0, FINE * max(frame.shape[:2])))
    trust = np.clip(den / 0.3, 0.0, 1.0)
    return (trust * fine + (1.0 - trust) * coarse).astype(np.float32)


def person_hue(frame: np.ndarray, u: np.ndarray, sure: np.ndarray, sigma: float) -> np.ndarray:
    """The person's own strength of the key's hue near each pixel (float32, 0 where no sure person
    is near): a soft pixel is a mix of the screen and *this*, not of the screen and grey. Skin and
    hair have a little green of their own; ignoring it reads hair tips as too transparent."""
    hue = cv2.GaussianBlur(frame.astype(np.float32) @ u, (3, 3), 0)
    mean, den = normalised_blur(hue, sure.astype(np.float32), sigma)
    return np.where(den > 1e-3, mean, 0.0).astype(np.float32)


def key_alpha(image: np.ndarray, u: np.ndarray, screen_y: np.ndarray, own: float,
              person: np.ndarray | None = None) -> np.ndarray:
    """Alpha (float32 HxW) of ``image`` against the key's hue ``u``: 0 on the screen, 1 off it.

    The key's hue in a pixel is measured in the screen's local brightness (``screen_y``, at the
    image's size), not the pixel's own: a hair strand half over the screen then reads as half
    screen (alpha 0.5), where a ratio to its own brightness would call it screen; ``own`` is the
    screen's own strength (1 by construction, up to lighting and noise). ``person``: the person's
    own hue strength there (:func:`person_hue`, in grey levels), the foreground end of the mix."""
    strength = (image.astype(np.float32) @ u) / np.maximum(screen_y, 16.0)
    strength = cv2.GaussianBlur(strength, (3, 3), 0)  # sensor noise, without losing hair
    low = PERSON * own
    if person is not None:
        low = np.minimum(low + person / np.maximum(screen_y, 16.0), 0.5 * own)
    a = (SCREEN * own - strength) / np.maximum(SCREEN * own - low, 1e-3)
    return np.clip(a, 0.0, 1.0).astype(np.float32)


def keyed_reach(keyed_small: np.ndarray, person: np.ndarray, core: np.ndarray) -> np.ndarray:
    """Where the key may speak (float32, working size): every non-screen region connected to the
    network's person (an arm, a held book, loose hair), a little grown; not an object elsewhere
    off the screen (a lamp beside it), which touches no person. Soft hair (keyed above 0.2, not
    0.5) still joins the person: cut by the reach it was 2 % of the key's error on the tuning set."""
    solid = ((keyed_small > 0.2) | (person > 0)).astype(np.uint8)
    n, labels = cv2.connectedComponents(solid, connectivity=8)
    touching = np.unique(labels[core > 0] if core.any() else labels[person > 0])
    kept = np.isin(labels, touching[touching > 0]).astype(np.uint8)
    return cv2.dilate(kept, disk(kept.shape, CORE)).astype(np.float32)


class KeyStage(Stage):
    def __init__(self, options, context):
        super().__init__(options, context)
        self.fixed = key_rgb(options.key)
        self.auto: np.ndarray | None = None

    def _key(self, fs) -> np.ndarray | None:
        if self.fixed is not None:
            return self.fixed
        found = spill_colour(estimate_key(fs.work_frame, fs.work_matte < 0.05))  # a screen's hue, never a skin-like wall
        if found is not None:  # smooth it: one frame's estimate jitters
            self.auto = found if self.auto is None else 0.8 * self.auto + 0.2 * found
        return self.auto

    def full(self, fs) -> None:
        key = self._key(fs)
        if key is None:
            return  # no screen to key against: the network's matte stands
        fs.key_colour = key
        u = direction(key)
        person, core = person_core(fs.work_matte)
        near = cv2.dilate(person, disk(person.shape, REACH))
        screen = (fs.work_matte < 0.05) & (near > 0)  # the screen right around the person
        if screen.sum() < 64:
            screen = fs.work_matte < 0.05
        small_y = screen_brightness(fs.work_frame, fs.work_matte < 0.05)
        own = float(np.median((fs.work_frame[screen].astype(np.float32) @ u) / np.maximum(small_y[screen], 16.0))) \
            if screen.any() else 1.0
        if own <= 0.05:
            return  # the key's hue is not on this screen
        reach = keyed_reach(key_alpha(fs.work_frame, u, small_y, own), person, core)
        near_person = cv2.dilate(person, disk(person.shape, HAIR)).astype(np.float32)
        sigma = max(1.0, FINE * max(fs.size))

        def evidence(box, up):
            x0, y0, x1, y1 = box
            frame = fs.frame[y0:y1, x0:x1]
            screen_y = fine_screen_brightness(frame, u, own, up(small_y), up(near_person) < 0.01)
            first = key_alpha(frame, u, screen_y, own)
            sure = (first >= 0.99) | (up(core.astype(np.float32)) > 0.5)
            keyed = key_alpha(frame, u, screen_y, own, person_hue(frame, u, sure, sigma))
            return np.maximum(keyed, luma_alpha(frame, screen_y))

        fs.matte = guarded_matte(fs.size, reach, core, evidence)

    def reset(self) -> None:
        self.auto = None


STAGE = StageSpec(
    name="key", phase="full", make=KeyStage,
    reads=("frame", "size", "work_frame", "work_matte"), writes=("matte", "key_colour"),
    summary="a green or blue screen: the key gives a hair-level matte, the network guards it",
    options=[Opt("key", "", "chroma key: green, blue, #RRGGBB or auto (default: off)", raw="", live=True,
                 validator=parse_key, metavar="COLOUR")],
    enabled=lambda o: bool(o.key),
)
