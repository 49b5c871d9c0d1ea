"""Synthetic evaluation sets with exact truth, made from real people and real backgrounds.

Deterministic: the same arguments and ``seed`` give the same pixels. Frames are RGB uint8
HxWx3, alphas float32 HxW in [0, 1], quantised to 8 bits so the PNG masks written are the exact
truth; every input is ``I = a*F + (1-a)*B`` rounded as the pipeline's blend rounds, plus noise.
``F`` (the person's colours) comes from :func:`.sources.true_foreground`: Blur-Fusion from the
photo and its true alpha by default, or the photo itself (``foreground="photo"``).

- :func:`sliding_clip` / :func:`slide_person`: a static-camera video. One person (cut out with
  their true soft alpha) slides horizontally across a still background, bottom-aligned, with
  smoothstep easing (nearly still at both ends, fastest in the middle), whole-pixel steps and a
  little sensor noise. Truth: the per-frame alpha and the clean plate (the background alone,
  noise-free) and the plate as a user would shoot it (``shot_plate``: another exposure or white
  balance, ``plate_gain``, and its own sensor noise, ``plate_noise``). ``scale`` makes the person
  smaller than the frame's height (a wide shot). :func:`write_sliding_clip` writes
  ``frames/00000.png...``, ``masks/00000.png...`` (same stems: ``backdrop eval DIR/frames
  DIR/masks`` runs it as a sequence), ``plate.png`` (the shot plate) and ``truth.json``.
- :func:`green_screen_set` / :func:`green_screen_image`: people over a green screen lit unevenly
  (a linear brightness gradient in a random direction times a vignette, plus faint smooth
  blotches), with sensor noise and green spill: screen colour mixed into ``F`` strongly where
  the alpha is soft or near the edge (within about ``spill_radius`` px inside the person) and a
  little (``spill_all``) everywhere on the person. Truth: the alpha, the clean foreground (no
  spill: what a perfect key plus despill gives), the spilled foreground and the lit screen.
  ``fold`` adds a crease in the cloth (a sharp dark line with a brighter and a darker side),
  ``shadow`` the person's own soft shadow cast on the screen beside them.
  :func:`write_green_screen_set` writes ``images/``, ``masks/``, ``foreground/``, ``spilled/``
  and ``screen/`` with one PNG per name (``backdrop eval DIR/images DIR/masks``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io.atomic import write_bytes
from ..io.image import write_image
from ..metrics import true_composite
from .composite import CompositeCase
from .sources import fit_background, load_backgrounds, load_people, quantize_alpha, true_foreground

GREEN_SCREEN = (38, 170, 64)  # a chroma-key green, RGB


def _resize(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.shape[1] == w and a.shape[0] == h:
        return a
    interp = cv2.INTER_AREA if w < a.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(a, (w, h), interpolation=interp)


def _add_noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma <= 0:
        return image
    noisy = image.astype(np.float32) + rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return np.clip(noisy + 0.5, 0, 255).astype(np.uint8)


# -- the sliding clip ------------------------------------------------------------------------------

@dataclass
class SlidingClip:
    """A static-camera clip of one person sliding across a still background, with exact truth."""

    frames: list[np.ndarray]  # RGB uint8 HxWx3 per frame
    alphas: list[np.ndarray]  # float32 HxW per frame, the exact truth
    plate: np.ndarray  # RGB uint8 HxWx3: the background alone, noise-free
    offsets: list[int]  # the cut-out's left edge (x, px) per frame
    person: str = ""
    background: str = ""
    seed: int = 0
    shot_plate: np.ndarray | None = None  # RGB uint8: the plate as shot (its gain and noise); None: ``plate``

    @property
    def user_plate(self) -> np.ndarray:
        """The picture a user would give as ``--plate``."""
        return self.plate if self.shot_plate is None else self.shot_plate


def slide_person(photo: np.ndarray, alpha: np.ndarray, background: np.ndarray, *, frames: int = 60,
                 size: tuple[int, int] = (640, 360), seed: int = 0, noise: float = 1.0, scale: float = 1.0,
                 across: bool = False, plate_gain: float | tuple[float, float, float] = 1.0,
                 plate_noise: float = 0.0, foreground: str = "blur-fusion", person: str = "",
                 background_name: str = "") -> SlidingClip:
    """The person of ``photo`` (true ``alpha``) sliding across ``background`` for ``frames`` frames
    of ``size`` = (width, height). The cut-out is scaled to ``scale`` of the frame's height
    (narrower than 70 % of the width), bottom-aligned, and travels from one side to the other
    (direction from ``seed``; ``across``: from outside the frame to outside the other side, so the
    scene is empty at both ends); ``noise``: sensor noise sigma in 8-bit levels. The shot plate is the
    background times ``plate_gain`` (one number: exposure, 1.02 = +2 %; three: white balance too)
    with its own noise of sigma ``plate_noise``."""
    if frames < 2:
        raise ValueError(f"frames must be 2 or more, got {frames}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    rng = np.random.default_rng(seed)
    w, h = size
    plate = fit_background(background, h, w)
    F = true_foreground(photo, alpha, foreground)
    s = min(scale * h / photo.shape[0], 0.7 * w / photo.shape[1])
    pw, ph = max(1, round(photo.shape[1] * s)), max(1, round(photo.shape[0] * s))
    F, a = _resize(F, pw, ph), quantize_alpha(_resize(alpha.astype(np.float32), pw, ph))
    x0, x1 = (-pw, w) if across else (0, w - pw)
    if rng.random() >= 0.5:
        x0, x1 = x1, x0
    t = np.linspace(0.0, 1.0, frames)
    offsets = [int(round(x0 + (x1 - x0) * v)) for v in t * t * (3 - 2 * t)]  # smoothstep
    out_frames, alphas = [], []
    for x in offsets:
        A = np.zeros((h, w), np.float32)
        FF = plate.copy()
        left, right = max(0, x), min(w, x + pw)  # the part of the cut-out inside the frame
        if right > left:
            A[h - ph:, left:right] = a[:, left - x:right - x]
            FF[h - ph:, left:right] = F[:, left - x:right - x]
        out_frames.append(_add_noise(true_composite(FF, A, plate), noise, rng))
        alphas.append(A)
    shot = None
    if plate_gain != 1.0 or plate_noise > 0:
        gain = np.broadcast_to(np.asarray(plate_gain, np.float32), (3,))
        lit = np.clip(plate.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
        shot = _add_noise(lit, plate_noise, np.random.default_rng([seed, 13]))  # the frames' noise stays as it was
    return SlidingClip(out_frames, alphas, plate, offsets, person, background_name, seed, shot)


def clean_sided(alpha: np.ndarray, limit: float = 0.05) -> bool:
    """True when the cut-out has (almost) no person on its left, right and top border: it can slide
    without showing a straight cut."""
    return max(float(alpha[:, 0].max()), float(alpha[:, -1].max()), float(alpha[0].max())) <= limit


def sliding_clip(images: str | Path, truth: str | Path, backgrounds: str | Path, *, seed: int = 0,
                 person: str | None = None, background: str | None = None, **kwargs) -> SlidingClip:
    """:func:`slide_person` with a person from ``images``/``truth`` (photos + alphas matched by
    stem) and a background from ``backgrounds``; unless named, both are picked with ``seed``, the
    person among those with clean sides (:func:`clean_sided`)."""
    rng = np.random.default_rng([seed, 7])
    people = load_people(images, truth)
    if person is not None:
        chosen = [p for p in people if p[0] == person]
        if not chosen:
            raise ValueError(f"no person {person!r} in {images}")
    else:
        chosen = [p for p in people if clean_sided(p[2])] or people
    name, photo, alpha = chosen[int(rng.integers(len(chosen)))]
    bgs = load_backgrounds(backgrounds)
    if background is not None:
        bgs = [b for b in bgs if b[0] == background]
        if not bgs:
            raise ValueError(f"no background {background!r} in {backgrounds}")
    bg_name, bg = bgs[int(rng.integers(len(bgs)))]
    return slide_person(photo, alpha, bg, seed=seed, person=name, background_name=bg_name, **kwargs)


def write_sliding_clip(clip: SlidingClip, folder: str | Path) -> dict[str, Path]:
    """``frames/NNNNN.png``, ``masks/NNNNN.png``, ``plate.png`` and ``truth.json`` under ``folder``."""
    folder = Path(folder)
    paths = {"frames": folder / "frames", "masks": folder / "masks", "plate": folder / "plate.png",
             "truth": folder / "truth.json"}
    paths["frames"].mkdir(parents=True, exist_ok=True)
    paths["masks"].mkdir(parents=True, exist_ok=True)
    for i, (frame, a) in enumerate(zip(clip.frames, clip.alphas)):
        write_image(paths["frames"] / f"{i:05d}.png", frame)
        write_image(paths["masks"] / f"{i:05d}.png", _alpha8(a))
    write_image(paths["plate"], clip.user_plate)
    write_bytes(paths["truth"], json.dumps({"person": clip.person, "background": clip.background,
                                            "seed": clip.seed, "offsets": clip.offsets}, indent=1))
    return paths


def _alpha8(a: np.ndarray) -> np.ndarray:
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


# -- the green-screen set --------------------------------------------------------------------------

@dataclass
class GreenScreenItem:
    """One person over a green screen, with every part of the truth."""

    name: str
    image: np.ndarray  # RGB uint8: the input, a*spilled + (1-a)*screen + noise
    alpha: np.ndarray  # float32 HxW, the exact truth
    foreground: np.ndarray  # RGB uint8: the clean person (no spill)
    spilled: np.ndarray  # RGB uint8: the person's colours as the camera saw them (with spill)
    screen: np.ndarray  # RGB uint8: the unevenly lit screen alone, noise-free
    spill: np.ndarray = field(repr=False, default=None)  # float32 HxW: the share of screen colour mixed in


def screen_lighting(h: int, w: int, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Float32 HxW gain around 1: a linear gradient (random direction) x a vignette x faint blotches."""
    y, x = np.mgrid[-1:1:h * 1j, -1:1:w * 1j].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    gradient = 1.0 + 0.25 * strength * (x * np.cos(theta) + y * np.sin(theta))
    vignette = 1.0 - 0.15 * strength * (x * x + y * y)
    blotch = rng.normal(0, 1, (max(2, h // 32), max(2, w // 32))).astype(np.float32)
    blotch = cv2.resize(cv2.GaussianBlur(blotch, (0, 0), 1.5), (w, h), interpolation=cv2.INTER_CUBIC)
    blotch *= 0.04 * strength / max(1e-6, float(np.abs(blotch).max()))
    return (gradient * vignette * (1 + blotch) * rng.uniform(0.9, 1.05)).astype(np.float32)


def fold_lighting(h: int, w: int, rng: np.random.Generator, depth: float) -> np.ndarray:
    """Float32 HxW gain of a crease in the cloth: a line through the middle 60 % of the screen at a
    random angle, ``depth`` darker in its sharp core (about 1 % of the size wide), the cloth on one
    side tilted toward the light (``depth / 3`` brighter) and on the other away from it."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
    theta = rng.uniform(0, np.pi)
    d = (x - cx) * np.cos(theta) + (y - cy) * np.sin(theta)  # signed distance to the crease, px
    width = max(1.5, 0.01 * max(h, w))
    crease = depth * np.exp(-0.5 * (d / width) ** 2)
    side = depth / 3 * np.tanh(d / (4 * width)) * rng.choice([-1.0, 1.0])
    return ((1.0 - crease) * (1.0 + side)).astype(np.float32)


def shadow_lighting(a: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Float32 HxW gain of the person's shadow on the screen: their alpha shifted 4-8 % of the
    size (down and to a random side, a light above and in front), softened, ``strength`` dark."""
    h, w = a.shape
    side = max(h, w)
    dx = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.08) * side
    dy = rng.uniform(0.0, 0.04) * side
    shifted = cv2.warpAffine(a, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), borderMode=cv2.BORDER_REPLICATE)
    soft = cv2.GaussianBlur(shifted, (0, 0), max(1.0, 0.015 * side))
    return (1.0 - strength * soft).astype(np.float32)


def green_screen_image(photo: np.ndarray, alpha: np.ndarray, *, seed: int = 0, name: str = "",
                       screen: tuple[int, int, int] = GREEN_SCREEN, lighting: float = 1.0, noise: float = 2.0,
                       spill_edge: float = 0.4, spill_all: float = 0.05, spill_radius: float = 8.0,
                       fold: float = 0.0, shadow: float = 0.0, foreground: str = "blur-fusion") -> GreenScreenItem:
    """The person of ``photo`` (true ``alpha``) in front of an unevenly lit green screen.

    Spill: the person's colours become ``(1-k)*F + k*screen`` with ``k = spill_all + spill_edge *
    e``, where ``e`` = clip(2 * GaussianBlur(1 - alpha, spill_radius), 0, 1) is 1 in the soft band
    and fades to 0 about ``spill_radius`` px inside the person. ``noise``: Gaussian sigma in
    8-bit levels, added to the input only. ``fold``: a crease this much darker
    (:func:`fold_lighting`); ``shadow``: the person's shadow this dark (:func:`shadow_lighting`);
    both are part of the screen (truth alpha 0 there). They draw from their own random stream, so
    the other pixels of a seed do not change when they are added."""
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    a = quantize_alpha(alpha)
    F = true_foreground(photo, a, foreground)
    gain = screen_lighting(h, w, rng, lighting)
    extra = np.random.default_rng([seed, 17])
    if fold > 0:
        gain = gain * fold_lighting(h, w, extra, fold)
    if shadow > 0:
        gain = gain * shadow_lighting(a, extra, shadow)
    lit = np.clip(np.array(screen, np.float32)[None, None] * gain[..., None] + 0.5, 0, 255).astype(np.uint8)
    near = cv2.GaussianBlur(1.0 - a, (0, 0), max(0.5, spill_radius))
    spill = np.clip(spill_all + spill_edge * np.clip(2.0 * near, 0, 1), 0, 1).astype(np.float32)
    k = spill[..., None]
    spilled = np.clip(F.astype(np.float32) * (1 - k) + lit.astype(np.float32) * k + 0.5, 0, 255).astype(np.uint8)
    image = _add_noise(true_composite(spilled, a, lit), noise, rng)
    return GreenScreenItem(name, image, a, F, spilled, lit, spill)


@dataclass
class GreenScreenSet:
    items: list[GreenScreenItem]

    def cases(self) -> list[CompositeCase]:
        """The set for :func:`backdrop.evaluate.evaluate_composite_cases` (true colours = the clean person)."""
        return [CompositeCase(it.name, it.image, it.alpha, it.foreground, "green screen") for it in self.items]


def green_screen_set(images: str | Path, truth: str | Path, *, limit: int | None = None, seed: int = 0,
                     **kwargs) -> GreenScreenSet:
    """:func:`green_screen_image` for every photo + alpha pair (matched by stem; the ``i``-th with
    seed ``seed * 1000 + i``)."""
    items = [green_screen_image(photo, alpha, seed=seed * 1000 + i, name=name, **kwargs)
             for i, (name, photo, alpha) in enumerate(load_people(images, truth, limit))]
    return GreenScreenSet(items)


def write_green_screen_set(gs: GreenScreenSet, folder: str | Path) -> dict[str, Path]:
    """``images/``, ``masks/``, ``foreground/``, ``spilled/``, ``screen/`` (``NAME.png`` each) under ``folder``."""
    folder = Path(folder)
    paths = {k: folder / k for k in ("images", "masks", "foreground", "spilled", "screen")}
    for p in paths.values():
        p.mkdir(parents=True, exist_ok=True)
    for it in gs.items:
        write_image(paths["images"] / f"{it.name}.png", it.image)
        write_image(paths["masks"] / f"{it.name}.png", _alpha8(it.alpha))
        write_image(paths["foreground"] / f"{it.name}.png", it.foreground)
        write_image(paths["spilled"] / f"{it.name}.png", it.spilled)
        write_image(paths["screen"] / f"{it.name}.png", it.screen)
    return paths
