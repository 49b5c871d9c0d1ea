"""Geometric augmentation: border-preserving affine warps and thin-plate-spline warps.

Why its own module: the geometric warps (translation, rotation, scale, thin-plate spline)
multiply the poses of a few hundred labelled people, and they carry the one subtle rule of the
synthesis, kept here in one place with its helpers:

- a person who touches a frame border (a half-body portrait cut at the bottom) still touches the
  same border after the transform, so the network never sees floating half-bodies that real
  cameras don't produce (see :func:`random_geometry`);
- flips are left-right only; people are never upside down in a video call.

Pure NumPy/OpenCV (no torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BORDERS = ("top", "bottom", "left", "right")


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
