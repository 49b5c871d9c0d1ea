"""How far to relight the person: the classical estimate from person and background statistics.

What a frame gives (:func:`scene_of`): the person's statistics (weights: the matte), their face's
(the tracker's face landmarks, or the top of the matte), the background's (weights: ``1 - a``
times a proximity that falls from 1 next to the person to ``FAR_WEIGHT`` in far corners, so a
bright sky at the top of a beach photo counts less than the sand beside the person), and how flat
the background is (a plain colour is no scene: there is no light to match).

The estimate (:func:`estimate_look`) compares the person's statistics with the background's.
People are not lit like their background on average: on the 310 shared portraits the person is
1.3 stops darker than the weighted room (standard deviation 1.7 stops between photos), warmer
and with more contrast and chroma. So the estimate moves only the part of each difference that
lies beyond its natural spread: for each quantity ``d = person - background - offset`` and the
correction is ``-gain * shrink(d, dead)`` (a soft threshold: differences within ``dead`` of the
usual one are left alone). The offsets, gains and dead zones are the ``RelightConstants``:
the offsets and spreads measured on the 310 portraits, the gains and dead zones searched on the
tuning split (``benchmarks/harmonize.py --tune``; the held-out split never takes part). That is
Reinhard's colour transfer made partial and aware of how people and rooms really differ; every
gain measured worse than none there, so all ship as 0 and the look is off (docs/quality.md
"Relight"): the machinery stays for a learned estimate and for the measurements.

The low-light lift (:func:`lift_gain`) is separate and absolute: a face darker than
``lift_below`` (linear luminance) is brought most of the way up to it, whatever the background.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .relight import EPS, LUMA, Look, Stats, measure, small_pair, to_linear

FAR_WEIGHT = 0.25  # the proximity weight of the background far from the person
NEAR_SIGMA = 0.1  # the proximity's Gaussian, as a share of the long side (the page: a mipmap level)
FACE_LANDMARKS = slice(0, 11)  # BlazePose 0..10: nose, eyes, ears, mouth
UPPER_SHARE = 0.3  # without landmarks: the top of the person's box taken as the face and hair
FLAT_LEVELS = (2.0, 8.0)
HIGHLIGHT_QUANTILE = 0.98
HISTOGRAM_BINS = 16
HISTOGRAM_STOPS = (-8.0, 0.0)  # log2 linear luminance: 8 stops below white in half stops  # background luminance spread (levels): below the first no scene, above the second a full one


@dataclass(frozen=True)
class RelightConstants:
    """The classical estimate's numbers (see the module docstring); log2 units, luminance linear."""

    offset_lum: float = -1.45
    offset_warm: float = 0.17
    offset_green: float = -0.19
    offset_spread: float = 0.37
    offset_chroma: float = 0.58
    # every gain 0: on the tuning photos each look measured worse than none (benchmarks/harmonize.py
    # --tune gain_warm=0,0.25,0.5 gain_green=0,0.3: objective 163.0 at 0/0, 165.5 at 0/0.3, 166.9 at
    # 0.25/0, 169.6 at 0.25/0.3; docs/quality.md "Relight"): the classical look is off, the lift stays
    gain_lum: float = 0.0
    gain_warm: float = 0.0
    gain_green: float = 0.0
    gain_spread: float = 0.0
    gain_chroma: float = 0.0
    dead_lum: float = 2.5
    dead_warm: float = 1.2
    dead_green: float = 0.4
    dead_spread: float = 0.84
    dead_chroma: float = 1.4
    lift_below: float = -1.0
    lift_gain: float = 1.75  # 1.5 1.75 2.0: objective 183.2 177.6 177.8 on the tuning photos (benchmarks/harmonize.py --tune)
    lift_face: float = 0.3
    lift_noise: float = 1.2
    lift_noisy: float = 1.6
    lift_clean: float = 0.0
    lift_max: float = 6.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def has_look(self) -> bool:
        """Whether any gain of the look is above 0 (else the look is always none)."""
        return any(v != 0 for k, v in asdict(self).items() if k.startswith("gain_"))


@dataclass(frozen=True)
class Scene:
    """One frame as the estimate sees it."""

    person: Stats
    face: Stats
    background: Stats
    face_level: float  # mean linear luminance of the face region (0: no face)
    scene: float  # 0: the background is flat (no light to match) .. 1: a picture


def proximity(matte_small: np.ndarray) -> np.ndarray:
    """Background weights: ``(1 - a)`` times a nearness that is 1 next to the person (the blurred
    matte at twice its mean or more) and ``FAR_WEIGHT`` far from them."""
    h, w = matte_small.shape
    near = cv2.GaussianBlur(matte_small, (0, 0), max(1.0, NEAR_SIGMA * max(h, w)))
    near = np.clip(near / max(2.0 * float(matte_small.mean()), 1e-6), 0, 1)
    return (1 - matte_small) * (FAR_WEIGHT + (1 - FAR_WEIGHT) * near)


def upper_weight(matte_small: np.ndarray) -> np.ndarray:
    """The matte limited to the top ``UPPER_SHARE`` of the person's height (head and shoulders).
    The person's rows are taken from the matte's moments (mean row and spread, as if spread
    evenly: top = mean - sqrt(3) sd, height = 2 sqrt(3) sd), which the page's GPU reduction
    computes the same way without reading anything back."""
    total = float(matte_small.sum())
    if total <= 1e-6:
        return matte_small
    rows = np.arange(matte_small.shape[0], dtype=np.float32)[:, None] + 0.5
    mean = float((matte_small * rows).sum() / total)
    sd = float(np.sqrt(max(0.0, float((matte_small * (rows - mean) ** 2).sum() / total))))
    cut = mean - np.sqrt(3.0) * sd + UPPER_SHARE * 2 * np.sqrt(3.0) * sd
    return matte_small * (rows < cut)


def face_weight(matte_small: np.ndarray, people, size: tuple[int, int]) -> np.ndarray:
    """The face region at the statistics' size: the tracked people's face landmarks (box grown
    by half its size, within the matte), else :func:`upper_weight`."""
    h, w = matte_small.shape
    kx, ky = w / size[0], h / size[1]
    out = np.zeros_like(matte_small)
    for person in people or ():
        pts = np.asarray(person.landmarks)[FACE_LANDMARKS]
        seen = pts[pts[:, 3] > 0.5]
        if len(seen) < 3:
            continue
        x0, y0 = seen[:, 0].min() * kx, seen[:, 1].min() * ky
        x1, y1 = seen[:, 0].max() * kx, seen[:, 1].max() * ky
        gx, gy = 0.5 * max(x1 - x0, 2), 0.5 * max(y1 - y0, 2)
        c0, r0 = max(0, int(x0 - gx)), max(0, int(y0 - gy))
        c1, r1 = min(w, int(np.ceil(x1 + gx))), min(h, int(np.ceil(y1 + gy)))
        out[r0:r1, c0:c1] = matte_small[r0:r1, c0:c1]
    return out if out.sum() > 1 else upper_weight(matte_small)


def scene_flatness(background_small: np.ndarray) -> float:
    """0 for a flat colour (no light to match), 1 for a picture: the spread of its grey levels."""
    grey = cv2.cvtColor(background_small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lo, hi = FLAT_LEVELS
    return float(np.clip((grey.std() - lo) / (hi - lo), 0, 1))


def scene_of(person_rgb: np.ndarray, matte: np.ndarray, background: np.ndarray | None,
             people=(), size: tuple[int, int] | None = None) -> Scene:
    """The :class:`Scene` of a frame: ``person_rgb`` (RGB uint8, the person's colours), its
    ``matte`` (float32 HxW in [0, 1]), the new ``background`` (RGB uint8, any size: scaled to the
    matte's; None: no scene) and the tracked ``people`` (face landmarks in frame pixels of
    ``size`` (w, h), default the matte's size)."""
    small, a = small_pair(person_rgb, matte)
    size = size or (matte.shape[1], matte.shape[0])
    face_w = face_weight(a, people, size)
    person = measure(small, a)
    face = measure(small, face_w)
    fsum = float(face_w.sum())
    face_level = float((to_linear(small) @ LUMA * face_w).sum() / fsum) if fsum > 1e-6 else 0.0
    if background is None:
        return Scene(person, face, Stats(), face_level, 0.0)
    bg_small = cv2.resize(background, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return Scene(person, face, measure(bg_small, proximity(a)), face_level, scene_flatness(bg_small))


def scene_features(scene: Scene) -> np.ndarray:
    """The learned estimate's inputs (float32, ``FEATURES`` long): the person's, face's and
    background's statistics, their differences and the face's level in stops."""
    p, f, b = scene.person.vector(), scene.face.vector(), scene.background.vector()
    diff = np.float32([p[0] - b[0], p[1] - b[1], p[2] - b[2], _log_ratio(p[3], b[3]), _log_ratio(p[4], b[4])])
    level = np.log2(max(scene.face_level, 1e-4))
    return np.concatenate([p, f, b, diff, np.float32([level])]).astype(np.float32)


FEATURES = 21


def shrink(d: float, dead: float) -> float:
    """Soft threshold: 0 within ``dead`` of zero, the excess beyond it."""
    return float(np.sign(d) * max(0.0, abs(d) - dead))


def estimate_look(scene: Scene, c: RelightConstants = RelightConstants()) -> Look:
    """The classical correction of the person toward the background (see the module docstring);
    nothing without a person or a scene."""
    p, b = scene.person, scene.background
    if p.weight <= 1e-6 or b.weight <= 1e-6 or scene.scene <= 0:
        return Look()
    exposure = -c.gain_lum * shrink(p.lum - b.lum - c.offset_lum, c.dead_lum)
    warm = -c.gain_warm * shrink(p.warm - b.warm - c.offset_warm, c.dead_warm)
    green = -c.gain_green * shrink(p.green - b.green - c.offset_green, c.dead_green)
    contrast = -c.gain_spread * shrink(_log_ratio(p.spread, b.spread) - c.offset_spread, c.dead_spread)
    saturation = -c.gain_chroma * shrink(_log_ratio(p.chroma, b.chroma) - c.offset_chroma, c.dead_chroma)
    return Look(exposure, warm, green, contrast, saturation).scaled(scene.scene)


def _log_ratio(a: float, b: float) -> float:
    return float(np.log2(max(a, 1e-3) / max(b, 1e-3)))


def lift_gain(highlight: float, face_level: float, noisy: float, c: RelightConstants = RelightConstants()) -> float:
    """The low-light lift's gain (1: none). A well-exposed person's brightest pixels (the 98th
    percentile of log2 luminance, ``highlight``) sit near white: on the shared portraits the median
    is -0.85 stops, and a person 2 stops under (the low-light perturbation) has -2.7; that right
    edge of the histogram separates them better than any mean (AUC 0.89 against 0.78 for the
    median, 0.78 for the difference to the background). A camera in a dark room also raises its
    gain, so the person is noisy (``noisy``, ``lowlight.noise_level`` clipped: 0.9 levels median
    on the portraits, 1.8 when dark and noisy; AUC 0.94): the lift is ``lift_gain`` times how far the highlights are below
    ``lift_below`` (stops), times a weight rising from ``lift_clean`` at ``lift_noise`` levels of
    noise to 1 at ``lift_noisy``; never so much that the face (linear ``face_level``) goes above
    ``lift_face``, at most ``lift_max``."""
    ramp = float(np.clip((noisy - c.lift_noise) / max(c.lift_noisy - c.lift_noise, 1e-6), 0, 1))
    stops = c.lift_gain * max(0.0, c.lift_below - highlight) * (c.lift_clean + (1 - c.lift_clean) * ramp)
    if face_level > 0:
        stops = min(stops, float(np.log2(max(c.lift_face / face_level, 1.0))))
    return float(np.clip(np.exp2(stops), 1.0, c.lift_max))


def highlight_of(small: np.ndarray, weight: np.ndarray, q: float = HIGHLIGHT_QUANTILE) -> float:
    """The weighted ``q`` quantile of log2 linear luminance (``small`` RGB uint8, ``weight``
    float32), read off a histogram of ``HISTOGRAM_BINS`` bins over ``HISTOGRAM_STOPS`` (values
    outside fall in the end bins), linear within the bin that crosses ``q``: the page's GPU
    reduction makes the same histogram (four RGBA textures, averaged by their mipmaps)."""
    y = np.log2(np.maximum(to_linear(small).reshape(-1, 3) @ LUMA, EPS))
    w = weight.reshape(-1)
    total = float(w.sum())
    if total <= 1e-6:
        return 0.0
    lo, hi = HISTOGRAM_STOPS
    width = (hi - lo) / HISTOGRAM_BINS
    bins = np.clip(((y - lo) / width).astype(np.int32), 0, HISTOGRAM_BINS - 1)
    hist = np.bincount(bins, weights=w, minlength=HISTOGRAM_BINS) / total
    cdf = np.cumsum(hist)
    k = int(np.searchsorted(cdf, q))
    k = min(k, HISTOGRAM_BINS - 1)
    below = cdf[k - 1] if k > 0 else 0.0
    frac = (q - below) / max(float(hist[k]), 1e-9)
    return float(lo + (k + np.clip(frac, 0, 1)) * width)


def exposure_of(person_rgb: np.ndarray, matte: np.ndarray, people=(), size: tuple[int, int] | None = None
                ) -> tuple[float, float]:
    """(highlight, face level) of the person: :func:`highlight_of` over the matte, and the mean
    linear luminance of the face region (:func:`face_weight`; 0: nobody)."""
    small, a = small_pair(person_rgb, matte)
    w = face_weight(a, people, size or (matte.shape[1], matte.shape[0]))
    total = float(w.sum())
    face = float((to_linear(small) @ LUMA * w).sum() / total) if total > 1e-6 else 0.0
    return highlight_of(small, a), face


def person_box(matte: np.ndarray, above: float = 0.02) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around ``matte > above``, or None when there is nobody."""
    rows = np.flatnonzero(matte.max(axis=1) > above)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(matte.max(axis=0) > above)
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def relight_once(person_rgb: np.ndarray, matte: np.ndarray, background: np.ndarray | None,
                 c: RelightConstants = RelightConstants(), strength: float = 1.0, people=(),
                 size: tuple[int, int] | None = None, noise: tuple[float, float] | None = None,
                 estimator=None) -> np.ndarray:
    """One frame of the relight stage with nothing to smooth against (a photo, the first frame):
    the lift, then the look toward ``background``, on the person's colours (RGB uint8; returned
    new, or as given when nothing changes). What ``backdrop eval --harmonize`` and the tuning
    run; the stage does the same with its values smoothed over time. ``estimator`` (a
    :class:`Scene` -> :class:`Look` function) replaces the classical :func:`estimate_look`."""
    from .lowlight import lift_person, person_noise
    from .relight import apply_look, pivot_of

    box = person_box(matte)
    if box is None or strength <= 0:
        return person_rgb
    highlight, level = exposure_of(person_rgb, matte, people, size)
    noisy, noise = person_noise(person_rgb, matte, box) if noise is None else noise
    gain = float(np.exp2(np.log2(lift_gain(highlight, level, noisy, c)) * strength))
    fg = lift_person(person_rgb, gain, level, noise, box) if gain > 1.001 else person_rgb
    if background is None:
        return fg
    scene = scene_of(fg, matte, background, people, size)
    look = (estimator or (lambda sc: estimate_look(sc, c)))(scene).scaled(strength)
    if look.is_identity():
        return fg
    x0, y0, x1, y1 = box
    out = fg.copy()
    out[y0:y1, x0:x1] = apply_look(fg[y0:y1, x0:x1], look, pivot_of(scene.person, look))
    return out
