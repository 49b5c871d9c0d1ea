"""Training data: folder pairs, deterministic splits, backgrounds, synthesis and augmentation.

Pure NumPy/OpenCV (no torch), so every transform can be tested and reused without the extra.

Why synthesis: a few hundred labelled people are too few backgrounds for a network to learn
"person" rather than "this photo's room". Cutting each person out with its mask and compositing
onto many backgrounds (people x backgrounds) multiplies the data, and the geometric warps
(translation, rotation, scale, thin-plate spline) multiply poses. Two rules keep the synthetic
images plausible:

- a person who touches a frame border (a half-body portrait cut at the bottom) still touches the
  same border after the transform, so the network never sees floating half-bodies that real
  cameras don't produce (see :func:`random_geometry`);
- flips are left-right only; people are never upside down in a video call.

Photometric augmentation (colour, gamma, blur, noise, JPEG) stands in for webcams and codecs.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..io.image import IMAGE_SUFFIXES, read_image
from . import TrainError

SPLITS = ("train", "val", "eval")
BORDERS = ("top", "bottom", "left", "right")


# ---------------------------------------------------------------------------------------------
# pairs and splits
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """One labelled example on disk: an image and its mask or alpha (8-bit, 255 = person)."""

    name: str
    image: Path
    mask: Path


def find_pairs(root: str | Path) -> list[Pair]:
    """Pairs in a folder: ``index.csv`` (columns name,image,mask), or ``images/`` + ``masks/``
    (or ``alpha/``/``mattes/``) matched by file stem."""
    root = Path(root)
    if not root.is_dir():
        raise TrainError(f"training data folder not found: {root}")
    index = root / "index.csv"
    if index.is_file():
        with open(index, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or not {"image", "mask"} <= set(rows[0]):
            raise TrainError(f"{index} needs columns image and mask")
        return [Pair(r.get("name") or Path(r["image"]).stem, root / r["image"], root / r["mask"]) for r in rows]
    images = root / "images"
    masks = next((root / d for d in ("masks", "alpha", "mattes") if (root / d).is_dir()), None)
    if not images.is_dir() or masks is None:
        raise TrainError(f"{root} has neither index.csv nor images/ with masks/ (or alpha/)")
    by_stem = {p.stem: p for p in masks.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    pairs = [Pair(p.stem, p, by_stem[p.stem]) for p in sorted(images.iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in by_stem]
    if not pairs:
        raise TrainError(f"no image/mask pairs with matching names under {root}")
    return pairs


def hash_fraction(name: str, salt: str = "backdrop") -> float:
    """A stable number in [0, 1) from a name: the split never depends on file order or seed."""
    digest = hashlib.sha256(f"{salt}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(name: str, eval_fraction: float = 0.2, val_fraction: float = 0.1, salt: str = "backdrop") -> str:
    """``eval`` (never trained on, reported), ``val`` (per-epoch validation) or ``train``."""
    u = hash_fraction(name, salt)
    if u < eval_fraction:
        return "eval"
    if u < eval_fraction + val_fraction:
        return "val"
    return "train"


def select(pairs: list[Pair], part: str, eval_fraction: float = 0.2, val_fraction: float = 0.1,
           salt: str = "backdrop") -> list[Pair]:
    if part not in SPLITS and part != "all":
        raise TrainError(f"split must be one of {SPLITS} or all, not {part!r}")
    if part == "all":
        return list(pairs)
    return [p for p in pairs if split_of(p.name, eval_fraction, val_fraction, salt) == part]


def load_pair(pair: Pair, max_side: int | None = 512) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 HxWx3, float32 alpha HxW in [0, 1]); the mask is resized to the image (the
    shared remove.bg masks are often smaller), the pair shrunk so its longer side <= max_side."""
    img = read_image(pair.image)
    m = read_image(pair.mask)[..., 0]
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        h, w = max(1, round(h * s)), max(1, round(w * s))
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return img, m.astype(np.float32) / 255.0


# ---------------------------------------------------------------------------------------------
# frames from folders or videos (backgrounds, unlabelled scenes)
# ---------------------------------------------------------------------------------------------
def iter_frames(source: str | Path, every: int = 1, limit: int | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """(name, RGB frame) from a folder of images (sorted) or a video file, every ``every``-th."""
    source = Path(source)
    every = max(1, int(every))
    n = 0
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for i, p in enumerate(files):
            if i % every:
                continue
            yield p.stem, read_image(p)
            n += 1
            if limit and n >= limit:
                return
        return
    if not source.exists():
        raise TrainError(f"frames not found: {source}")
    if source.suffix.lower() in IMAGE_SUFFIXES:
        yield source.stem, read_image(source)
        return
    from ..io.video import VideoReader

    reader = VideoReader(source)
    try:
        for fr in reader:
            if fr.index % every:
                continue
            yield f"{source.stem}-{fr.index:06d}", fr.image
            n += 1
            if limit and n >= limit:
                return
    finally:
        reader.close()


def remove_person(img: np.ndarray, alpha: np.ndarray, grow: int = 9) -> np.ndarray:
    """A background plate from a labelled photo: the person (grown a little) inpainted away.

    Used when no background folder is given, so that synthesis still has many backgrounds;
    the smeared region is background-coloured and teaches "not a person" too.
    """
    mask = (alpha > 0.1).astype(np.uint8)
    if grow:
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    if mask.mean() > 0.85:  # nothing left to inpaint from
        return np.ascontiguousarray(cv2.GaussianBlur(img, (0, 0), 25))
    return cv2.inpaint(img, mask * 255, 5, cv2.INPAINT_TELEA)


def load_backgrounds(sources: list[str | Path], max_side: int = 512, every: int = 30,
                     limit: int = 2000) -> list[np.ndarray]:
    """Background images from folders, image files or videos (one frame in ``every``)."""
    out: list[np.ndarray] = []
    for src in sources:
        for _, fr in iter_frames(src, every=every if Path(src).is_file() else 1, limit=limit):
            h, w = fr.shape[:2]
            s = min(1.0, max_side / max(h, w))
            if s < 1:
                fr = cv2.resize(fr, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
            out.append(fr)
            if len(out) >= limit:
                return out
    if not out:
        raise TrainError(f"no background images found in {', '.join(map(str, sources))}")
    return out


# ---------------------------------------------------------------------------------------------
# geometry
# ---------------------------------------------------------------------------------------------
def touching_borders(alpha: np.ndarray, threshold: float = 0.5, min_pixels: int = 2) -> set[str]:
    """Which frame borders the person touches (at least ``min_pixels`` person pixels on the edge)."""
    edges = {"top": alpha[0], "bottom": alpha[-1], "left": alpha[:, 0], "right": alpha[:, -1]}
    return {k for k, v in edges.items() if int((v > threshold).sum()) >= min_pixels}


def _edge_segment(alpha: np.ndarray, border: str, threshold: float = 0.5) -> np.ndarray:
    """The two end points (x, y) of the person's run along one border, in pixel centres."""
    h, w = alpha.shape
    if border in ("top", "bottom"):
        row = 0 if border == "top" else h - 1
        xs = np.flatnonzero(alpha[row] > threshold)
        return np.array([[xs.min(), row], [xs.max(), row]], np.float64)
    col = 0 if border == "left" else w - 1
    ys = np.flatnonzero(alpha[:, col] > threshold)
    return np.array([[col, ys.min()], [col, ys.max()]], np.float64)


def _affine(src_hw, out_hw, scale, angle_deg, tx, ty, flip) -> np.ndarray:
    """2x3 matrix: stretch source onto the output (as inference does), then scale/rotate about
    the centre, then translate (fractions of the output size)."""
    h, w = src_hw
    H, W = out_hw
    base = np.array([[W / w, 0, 0], [0, H / h, 0], [0, 0, 1]], np.float64)
    # pixel centres: x_out + 0.5 = (x_src + 0.5) * W / w
    base[0, 2] = 0.5 * W / w - 0.5
    base[1, 2] = 0.5 * H / h - 0.5
    if flip:
        base = np.array([[-1, 0, W - 1], [0, 1, 0], [0, 0, 1]], np.float64) @ base
    c = np.array([(W - 1) / 2, (H - 1) / 2])
    rot = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), angle_deg, scale)
    rot = np.vstack([rot, [0, 0, 1]])
    shift = np.array([[1, 0, tx * W], [0, 1, ty * H], [0, 0, 1]], np.float64)
    return (shift @ rot @ base)[:2]


def _mapped(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ M[:, :2].T + M[:, 2]


def _border_shift(M: np.ndarray, segments: dict[str, np.ndarray], out_hw, gap: float) -> tuple[float, float] | None:
    """Translation that lays every touched source border along the same output border, inside
    the frame by at most ``gap`` pixels, or None when no single translation does it for all.

    Inside, not beyond: between the mapped border run and the frame edge the warp samples past
    the source edge, where ``BORDER_REPLICATE`` continues the body; so contact is guaranteed even
    for a thin arm, and ``gap`` bounds the replicated strip.
    """
    H, W = out_hw
    lo = {"x": -np.inf, "y": -np.inf}
    hi = {"x": np.inf, "y": np.inf}

    def allow(axis, a, b):
        lo[axis], hi[axis] = max(lo[axis], a), min(hi[axis], b)

    for border, pts in segments.items():
        p = _mapped(M, pts)
        # the run must also stay (partly) inside the frame along its border: a contact near a
        # corner could otherwise slide off the end of the border
        along = "x" if border in ("top", "bottom") else "y"
        q = p[:, 0] if along == "x" else p[:, 1]
        size = W if along == "x" else H
        allow(along, 1 - q.max(), (size - 2) - q.min())
        if border == "bottom":
            allow("y", (H - 1) - p[:, 1].max() - gap, (H - 1) - p[:, 1].max())
        elif border == "top":
            allow("y", -p[:, 1].min(), -p[:, 1].min() + gap)
        elif border == "right":
            allow("x", (W - 1) - p[:, 0].max() - gap, (W - 1) - p[:, 0].max())
        else:
            allow("x", -p[:, 0].min(), -p[:, 0].min() + gap)
    shift = []
    for axis in ("x", "y"):
        if lo[axis] > hi[axis] + 1e-6:
            return None
        shift.append(float(np.clip(0.0, lo[axis], hi[axis])))  # the smallest move that works
    return shift[0], shift[1]


@dataclass
class GeometryConfig:
    """Ranges of the random geometric transform (the measured defaults suit portraits)."""

    scale: tuple[float, float] = (0.75, 1.25)
    rotate: float = 15.0        # degrees, +/-
    translate: float = 0.15     # fraction of the output size, +/-
    flip: float = 0.5           # left-right only
    tps: float = 0.5            # probability of a thin-plate-spline warp
    tps_strength: float = 0.06  # displacement std, fraction of the image size


def random_geometry(alpha: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator,
                    cfg: GeometryConfig | None = None) -> tuple[np.ndarray, bool]:
    """A random 2x3 source->output matrix that keeps every border the person touches touched
    (the same border; left and right swap places when the sample is flipped).

    Each touched border run is laid along the same output border (see :func:`_border_shift`);
    warping with ``BORDER_REPLICATE`` then continues the body past the frame, like a camera crop.
    Rotation is damped where it would tilt a long border run into a wide replicated wedge, and a
    person touching two opposite borders is scaled to span exactly that axis. Returns
    (matrix, flipped).
    """
    cfg = cfg or GeometryConfig()
    H, W = out_hw
    flip = bool(rng.random() < cfg.flip)
    touched = touching_borders(alpha)
    # a left-right flip mirrors the borders: what touched the left must touch the right
    mirror = {"left": "right", "right": "left"} if flip else {}
    segments = {mirror.get(b, b): _edge_segment(alpha, b) for b in touched}
    scale = float(rng.uniform(*cfg.scale))
    angle = float(rng.uniform(-cfg.rotate, cfg.rotate))
    tx, ty = (float(v) for v in rng.uniform(-cfg.translate, cfg.translate, 2))
    gap = max(2.0, 0.03 * max(H, W))
    identity = _affine(alpha.shape, out_hw, 1.0, 0.0, 0.0, 0.0, flip)
    if len(segments) == 4:  # fills the frame: any move would cut or float it
        return identity, flip
    for _ in range(8):
        M = _affine(alpha.shape, out_hw, scale, angle, tx, ty, flip)
        mapped = {b: _mapped(M, pts) for b, pts in segments.items()}
        spread = max([np.ptp(p[:, 1 if b in ("top", "bottom") else 0]) for b, p in mapped.items()] or [0.0])
        if spread > 2 * gap and abs(angle) > 1e-3:
            angle *= 0.9 * 2 * gap / spread
            continue
        if "top" in mapped and "bottom" in mapped:
            ext = mapped["bottom"][:, 1].max() - mapped["top"][:, 1].min()
            if abs(ext - (H - 1)) > 0.25:
                scale *= (H - 1) / max(ext, 1.0)
                continue
        if "left" in mapped and "right" in mapped:
            ext = mapped["right"][:, 0].max() - mapped["left"][:, 0].min()
            if abs(ext - (W - 1)) > 0.25:
                scale *= (W - 1) / max(ext, 1.0)
                continue
        shift = _border_shift(M, segments, out_hw, gap)
        if shift is None:
            break
        M[:, 2] += shift
        return M, flip
    return identity, flip


def random_tps_maps(h: int, w: int, rng: np.random.Generator, strength: float = 0.06,
                    grid: int = 5, coarse: int = 33) -> tuple[np.ndarray, np.ndarray]:
    """Backward maps (map_x, map_y) of a random thin-plate-spline warp for ``cv2.remap``.

    Control points on a ``grid`` x ``grid`` lattice; only interior points move, border points are
    pinned, so the image's edges (and a person touching them) stay where they are. The spline is
    evaluated on a coarse lattice and upsampled: a TPS is smooth, so this costs nothing visible.
    """
    g = np.linspace(0.0, 1.0, grid)
    gx, gy = np.meshgrid(g, g)
    src = np.stack([gx.ravel(), gy.ravel()], 1)
    interior = (src > 1e-9).all(1) & (src < 1 - 1e-9).all(1)
    dst = src.copy()
    dst[interior] += rng.normal(0.0, strength, (int(interior.sum()), 2))

    def U(r2):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(r2 > 0, r2 * np.log(r2), 0.0)

    n = len(dst)
    K = U(((dst[:, None] - dst[None]) ** 2).sum(-1))
    P = np.hstack([np.ones((n, 1)), dst])
    A = np.zeros((n + 3, n + 3))
    A[:n, :n] = K + 1e-8 * np.eye(n)
    A[:n, n:] = P
    A[n:, :n] = P.T
    b = np.zeros((n + 3, 2))
    b[:n] = src  # output point (dst) -> where to sample in the source
    coef = np.linalg.solve(A, b)
    # evaluate on a coarse lattice whose corners are the pixel centres of the image corners,
    # then interpolate bilinearly with the same (align-corners) convention: a TPS is smooth
    ch, cw = min(coarse, h), min(coarse, w)
    qx, qy = np.meshgrid(np.linspace(0.0, 1.0, cw), np.linspace(0.0, 1.0, ch))
    q = np.stack([qx.ravel(), qy.ravel()], 1)
    Kq = U(((q[:, None] - dst[None]) ** 2).sum(-1))
    Pq = np.hstack([np.ones((len(q), 1)), q])
    m = (Kq @ coef[:n] + Pq @ coef[n:]).reshape(ch, cw, 2)
    fy = np.linspace(0.0, ch - 1.0, h)
    fx = np.linspace(0.0, cw - 1.0, w)
    y0 = np.minimum(fy.astype(int), ch - 2) if ch > 1 else np.zeros(h, int)
    x0 = np.minimum(fx.astype(int), cw - 2) if cw > 1 else np.zeros(w, int)
    wy = (fy - y0)[:, None, None]
    wx = (fx - x0)[None, :, None]
    y1, x1 = np.minimum(y0 + 1, ch - 1), np.minimum(x0 + 1, cw - 1)
    top = m[y0][:, x0] * (1 - wx) + m[y0][:, x1] * wx
    bot = m[y1][:, x0] * (1 - wx) + m[y1][:, x1] * wx
    full = (top * (1 - wy) + bot * wy).astype(np.float32)
    mx, my = full[..., 0], full[..., 1]
    mx, my = mx * (w - 1), my * (h - 1)
    # between pinned points the spline may drift a fraction of a pixel off the edge: snap the
    # border rows/columns back onto the source border so a thin border contact is never lost
    mx[:, 0], mx[:, -1], my[0, :], my[-1, :] = 0, w - 1, 0, h - 1
    return mx, my


def tps_warp(arrays: list[np.ndarray], maps: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """Apply :func:`random_tps_maps` maps to same-size arrays (replicated borders)."""
    return [cv2.remap(a, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for a in arrays]


def warp(arrays: list[np.ndarray], M: np.ndarray, out_hw: tuple[int, int]) -> list[np.ndarray]:
    """Apply the 2x3 affine to each array, with replicated borders (bodies continue past edges)."""
    H, W = out_hw
    return [cv2.warpAffine(a, M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            for a in arrays]


def random_background(bg: np.ndarray, out_hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random crop of a background, scaled to cover the output (never stretched), maybe flipped."""
    H, W = out_hw
    h, w = bg.shape[:2]
    s = max(H / h, W / w) * float(rng.uniform(1.0, 1.6))
    nh, nw = max(H, int(np.ceil(h * s))), max(W, int(np.ceil(w * s)))
    big = cv2.resize(bg, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    y = int(rng.integers(0, nh - H + 1))
    x = int(rng.integers(0, nw - W + 1))
    crop = big[y:y + H, x:x + W]
    return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def composite(fg: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """``I = a*F + (1-a)*B`` in float, back to uint8."""
    a = alpha[..., None].astype(np.float32)
    return np.clip(a * fg.astype(np.float32) + (1 - a) * bg.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# photometric
# ---------------------------------------------------------------------------------------------
@dataclass
class PhotoConfig:
    brightness: float = 0.25   # multiplicative, +/-
    contrast: float = 0.25
    saturation: float = 0.3
    hue: float = 8.0           # degrees, +/-
    gamma: tuple[float, float] = (0.7, 1.5)
    blur: float = 0.25         # probability; sigma 0.3..1.5 px
    noise: float = 0.3         # probability; sigma 2..8 levels
    jpeg: float = 0.3          # probability; quality 30..90


def photometric(img: np.ndarray, rng: np.random.Generator, cfg: PhotoConfig | None = None) -> np.ndarray:
    """Colour, gamma, blur, noise and JPEG, each random: what webcams and codecs do to a frame."""
    cfg = cfg or PhotoConfig()
    x = img.astype(np.float32) / 255.0
    # colour: hue and saturation in HSV, then brightness and contrast
    if cfg.hue or cfg.saturation:
        hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-cfg.hue, cfg.hue)) % 360.0
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation), 0, 1)
        x = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    mean = float(x.mean())
    x = (x - mean) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + mean
    x = x * rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    x = np.clip(x, 0, 1) ** rng.uniform(*cfg.gamma)
    if rng.random() < cfg.blur:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(0.3, 1.5)))
    out = x * 255.0
    if rng.random() < cfg.noise:
        out = out + rng.normal(0.0, rng.uniform(2.0, 8.0), out.shape).astype(np.float32)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    return out


# ---------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------
@dataclass
class SynthConfig:
    """How training samples are made from labelled people and backgrounds."""

    height: int = 256
    width: int = 256
    synth: float = 0.7          # probability of compositing onto another background
    consistency: bool = False   # also return a second photometric view (for the consistency loss)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
    photo: PhotoConfig = field(default_factory=PhotoConfig)


class SynthDataset:
    """People x backgrounds with warps and photometric augmentation; a ``torch`` map-style
    dataset by protocol (``__len__``/``__getitem__``), without importing torch.

    Sample ``i`` of epoch ``e`` is a pure function of (seed, e, i): runs are reproducible and a
    resumed run sees the same data it would have seen. ``teacher`` (optional) is a callable
    RGB -> float32 probability at the same size, run on the final augmented image for the
    distillation loss.
    """

    def __init__(self, people: list[tuple[np.ndarray, np.ndarray]], backgrounds: list[np.ndarray],
                 cfg: SynthConfig | None = None, *, length: int | None = None, seed: int = 0, teacher=None):
        if not people:
            raise TrainError("no labelled training images")
        self.people = people
        self.backgrounds = backgrounds
        self.cfg = cfg or SynthConfig()
        self.length = int(length or len(people))
        self.seed = int(seed)
        self.epoch = 0
        self.teacher = teacher

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, int(i)])
        cfg = self.cfg
        out_hw = (cfg.height, cfg.width)
        img, alpha = self.people[int(i) % len(self.people)]
        if rng.random() < cfg.geometry.tps:
            maps = random_tps_maps(alpha.shape[0], alpha.shape[1], rng, cfg.geometry.tps_strength)
            img, alpha = tps_warp([img, alpha], maps)
        # geometry is planned on the (warped) source it will move, so border contacts are exact
        M, _ = random_geometry(alpha, out_hw, rng, cfg.geometry)
        fg, a = warp([img, alpha], M, out_hw)
        if self.backgrounds and rng.random() < cfg.synth:
            bg = random_background(self.backgrounds[int(rng.integers(len(self.backgrounds)))], out_hw, rng)
            if rng.random() < 0.3:  # foreground lit differently from the room: don't learn seams
                fg = np.clip(fg.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
            base = composite(fg, a, bg)
        else:
            base = fg
        sample = {"image": photometric(base, rng, cfg.photo), "alpha": np.clip(a, 0, 1).astype(np.float32)}
        if cfg.consistency:
            sample["image2"] = photometric(base, rng, cfg.photo)
        if self.teacher is not None:
            sample["teacher"] = np.asarray(self.teacher(sample["image"]), np.float32)
        return sample
