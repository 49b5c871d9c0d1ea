"""Edge refinement to full resolution with the fast guided filter.

The network's matte is a blurry 256x256 map. Upsampling it bilinearly gives a soft band that
ignores the image: hair gets a grey halo, a shirt edge a ramp. The guided filter (He, Sun, Tang,
"Guided Image Filtering", TPAMI 2013) fits the matte locally as a linear function of the image,
``q = A*I + b``, so the matte's edges snap to the image's edges and hair strands get soft alpha.
The fast variant (He & Sun, "Fast Guided Filter", 2015) computes ``A`` and ``b`` at a working
resolution and only upsamples them, which keeps 1080p and 4K cheap: the full-resolution work is
two bilinear resizes and a multiply-add. A colour guide (3x3 covariance per pixel) separates
foreground and background colours that share a brightness; the grey guide is cheaper.

The filter is a local linear fit, and inside a wide soft band (BlazePose's, the people stage)
that fit copies the floor's texture into the alpha: a glow and speckles 3-25 px around a walking
person (on DAVIS lucia 13 % of that ring above 0.1, against 2 % for the bilinear matte). So each
refined pixel is kept between the network's own lowest and highest value within ``reach`` working
pixels (a cross; :func:`network_bounds`): the edge can still move a working pixel onto the
image's edge, the texture cannot raise a pixel the network holds near 0. Chosen on lucia alone
(reach 1-3, cross or square): MAD 10.3 -> 7.0, flicker 1.46 -> 0.54, IoU and boundary F up;
held-out hike MAD 7.0 -> 5.2, flicker 0.62 -> 0.22; the price is 8 % more gradient error on soft
hair truth (docs/quality.md "The guided filter kept to the network's band").

``quality="high"`` (photos) additionally solves the unknown band with closed-form matting
(Levin et al. 2008, via pymatting) on a trimap made from the matte.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..compose.regions import SURE, crop_resize
from .base import Opt, Stage, StageSpec


@dataclass
class RefineOptions:
    radius: int = 4  # box radius at working resolution
    eps: float = 1e-3
    colour: bool = False  # measured: +0.1 pt boundary F for 2x the cost; off by default
    sharpen: float = 0.0  # extra contrast around 0.5; measured: hurts Grad on soft truth
    reach: int | None = 1  # working pixels the refined matte may look for the network's bounds; None: unbounded


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), borderType=cv2.BORDER_REFLECT)


def guided_coefficients_grey(I: np.ndarray, p: np.ndarray, r: int, eps: float):
    mI, mp = _box(I, r), _box(p, r)
    cov = _box(I * p, r) - mI * mp
    var = _box(I * I, r) - mI * mI
    A = cov / (var + eps)
    b = mp - A * mI
    return _box(A, r), _box(b, r)


def guided_coefficients_colour(I: np.ndarray, p: np.ndarray, r: int, eps: float):
    """He et al. colour guided filter: A is HxWx3, b is HxW (Eq. 19-21 of the TPAMI paper)."""
    mI = _box(I, r)
    mp = _box(p, r)
    mIp = _box(I * p[..., None], r)
    cov_Ip = mIp - mI * mp[..., None]
    # 3x3 covariance of I per pixel, regularised
    prods = {}
    for i in range(3):
        for j in range(i, 3):
            prods[i, j] = _box(I[..., i] * I[..., j], r) - mI[..., i] * mI[..., j]
    a, b_, c = prods[0, 0] + eps, prods[0, 1], prods[0, 2]
    d, e = prods[1, 1] + eps, prods[1, 2]
    f = prods[2, 2] + eps
    # inverse of the symmetric matrix [[a b c][b d e][c e f]] by cofactors
    i00, i01, i02 = d * f - e * e, c * e - b_ * f, b_ * e - c * d
    i11, i12, i22 = a * f - c * c, b_ * c - a * e, a * d - b_ * b_
    det = a * i00 + b_ * i01 + c * i02
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    x, y, z = cov_Ip[..., 0], cov_Ip[..., 1], cov_Ip[..., 2]
    A = np.stack([(i00 * x + i01 * y + i02 * z), (i01 * x + i11 * y + i12 * z),
                  (i02 * x + i12 * y + i22 * z)], axis=-1) / det[..., None]
    bb = mp - (A * mI).sum(axis=-1)
    return _box(A, r), _box(bb, r)


def fold_grey(A: np.ndarray, b: np.ndarray, sharpen: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold the contrast (sharpen) and the 1/255 scaling into the low-resolution coefficients,
    so the full-resolution work is two resizes and one multiply-add on the 8-bit grey frame."""
    k = 1.0 + max(0.0, sharpen)
    return A * (k / 255.0), (b - 0.5) * k + 0.5


def network_bounds(matte_small: np.ndarray, reach: int | None):
    """The network's lowest and highest value within ``reach`` working pixels along the axes
    (a cross, as the page's gl-refine.js samples it), or None for an unbounded filter."""
    if reach is None:
        return None
    k = cv2.getStructuringElement(cv2.MORPH_CROSS, (2 * reach + 1, 2 * reach + 1))
    return cv2.erode(matte_small, k), cv2.dilate(matte_small, k)


def clamp(q: np.ndarray, bounds) -> np.ndarray:
    """``q`` in place to [0, 1], or to the network's bounds (lo, hi), which lie within it
    (``np.minimum`` then ``np.maximum``: ``np.clip`` with array bounds took 4x as long)."""
    if bounds is None:
        return np.clip(q, 0.0, 1.0, out=q)
    np.minimum(q, bounds[1], out=q)
    return np.maximum(q, bounds[0], out=q)


def apply_grey(grey: np.ndarray, A: np.ndarray, b: np.ndarray, bounds=None) -> np.ndarray:
    """``grey * A + b`` for the uint8 grey frame and the upsampled coefficients, clamped
    (:func:`clamp`; ``bounds`` upsampled like the coefficients)."""
    q = cv2.multiply(grey, A, dtype=cv2.CV_32F)
    q += b
    return clamp(q, bounds)


def grey_coefficients(guide_small: np.ndarray, matte_small: np.ndarray, opt: RefineOptions):
    """The folded grey-guide coefficients (A, b) at working size (see :func:`fold_grey`)."""
    I = cv2.cvtColor(guide_small, cv2.COLOR_RGB2GRAY).astype(np.float32) * (1 / 255)
    A, b = guided_coefficients_grey(I, matte_small.astype(np.float32, copy=False), opt.radius, opt.eps)
    return fold_grey(A, b, opt.sharpen)


def fast_guided_upsample(frame: np.ndarray, guide_small: np.ndarray, matte_small: np.ndarray,
                         options: RefineOptions | None = None) -> np.ndarray:
    """Full-resolution matte from a working-resolution matte and the full-resolution frame.

    ``frame`` is RGB uint8 HxWx3 (full size), ``guide_small`` the same frame at working size
    (RGB uint8), ``matte_small`` float32 at working size. Returns float32 HxW in [0, 1].
    """
    opt = options or RefineOptions()
    h, w = frame.shape[:2]
    sh, sw = matte_small.shape
    p = matte_small.astype(np.float32, copy=False)
    bounds = network_bounds(p, opt.reach)
    if bounds is not None and (sh, sw) != (h, w):
        bounds = tuple(cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in bounds)
    if opt.colour:
        I = guide_small.astype(np.float32) * (1 / 255)
        A, b = guided_coefficients_colour(I, p, opt.radius, opt.eps)
        if (sh, sw) == (h, w):
            full_I, A_up, b_up = I, A, b
        else:
            A_up = cv2.resize(A, (w, h), interpolation=cv2.INTER_LINEAR)
            b_up = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
            full_I = frame.astype(np.float32) * (1 / 255)
        q = (A_up * full_I).sum(axis=-1) + b_up
    else:
        A, b = grey_coefficients(guide_small, p, opt)
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if (sh, sw) != (h, w):
            A = cv2.resize(A, (w, h), interpolation=cv2.INTER_LINEAR)
            b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
        return apply_grey(grey, A, b, bounds)
    if opt.sharpen > 0:
        k = 1.0 + opt.sharpen
        q = (q - 0.5) * k + 0.5
    return clamp(q, bounds).astype(np.float32, copy=False)


def bilinear_upsample(matte_small: np.ndarray, w: int, h: int) -> np.ndarray:
    if matte_small.shape == (h, w):
        return matte_small
    return cv2.resize(matte_small, (w, h), interpolation=cv2.INTER_LINEAR)


def solve_unknown_band(frame: np.ndarray, matte: np.ndarray, band: int | None = None,
                       max_side: int = 800) -> np.ndarray:
    """Closed-form matting (pymatting) of the band around the matte's edge, for photos.

    Runs at up to ``max_side`` pixels (the solver is a sparse linear system over the unknown
    pixels) and upsamples the result only inside the band; elsewhere the matte is kept.
    """
    try:
        from pymatting import estimate_alpha_cf
    except ImportError:
        from ..errors import OptionError, install_hint

        raise OptionError("{option} high needs pymatting: " + install_hint("quality"), option="refine") from None
    h, w = matte.shape
    s = min(1.0, max_side / max(h, w))
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    img = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float64) / 255
    m = cv2.resize(matte, (sw, sh), interpolation=cv2.INTER_AREA)
    band = band or max(3, round(0.015 * max(sw, sh)))
    k = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    fg = cv2.erode((m > 0.5).astype(np.uint8), k)
    bg = cv2.erode((m <= 0.5).astype(np.uint8), k)
    if fg.sum() == 0 or bg.sum() == 0:
        return matte
    trimap = np.full((sh, sw), 0.5)
    trimap[fg > 0] = 1.0
    trimap[bg > 0] = 0.0
    alpha = estimate_alpha_cf(img, trimap).astype(np.float32)
    unknown = cv2.resize(((fg == 0) & (bg == 0)).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    alpha_up = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(unknown * alpha_up + (1 - unknown) * matte, 0, 1).astype(np.float32)


REFINE_MODES = ("bilinear", "guided", "high")


class RefineStage(Stage):
    """The working-size matte to full size with the frame as the guide."""

    def full(self, fs) -> None:
        m = fast_guided_upsample(fs.frame, fs.work_frame, fs.work_matte, RefineOptions())
        if self.options.refine == "high":
            m = solve_unknown_band(fs.frame, m)
        fs.matte = m
        fs.matte_source = "refined"


class GuidedRefineStage(RefineStage):
    """The grey-guide refinement, which can also run in the fused pass: the same matte, computed
    only over the band (``engine/fused.py``)."""

    def fuse_prepare(self, fs) -> None:
        opt = RefineOptions()
        p = fs.work_matte.astype(np.float32, copy=False)
        fs.guided_coefficients = grey_coefficients(fs.work_frame, p, opt) + (network_bounds(p, opt.reach),)
        fs.matte_source = "refined"

    def fuse_bounds(self, fs, tiles):
        A, b, bounds = fs.guided_coefficients
        top = b + 255.0 * A  # the matte at a pixel lies between b and b + 255 A of its 2x2 cells
        hi, lo = np.maximum(b, top), np.minimum(b, top)
        k = np.ones((3, 3), np.uint8)  # a pixel's cells are its nearest cell and its neighbours
        hi, lo = cv2.dilate(hi, k), cv2.erode(lo, k)
        if bounds is not None:  # clip(q, L, H) with L, H upsampled alike: bound each, then clip
            L, H = bounds
            hi = np.maximum(np.minimum(hi, cv2.dilate(H, k)), cv2.dilate(L, k))
            lo = np.minimum(np.maximum(lo, cv2.erode(L, k)), cv2.erode(H, k))
        return tiles.pool(hi <= SURE, True), tiles.pool(lo >= 1.0 - SURE, True)

    def fuse_region(self, fs, rect, matte):
        A, b, bounds = fs.guided_coefficients
        grey = fs.grey_crop(rect)
        if bounds is not None:
            bounds = tuple(crop_resize(x, fs.size, rect) for x in bounds)
        return apply_grey(grey, crop_resize(A, fs.size, rect), crop_resize(b, fs.size, rect), bounds)


def make_refine(options, context) -> RefineStage:
    """The guided refinement joins the fused pass; closed-form matting of the band (``high``) and
    the colour guide work on the whole frame."""
    fusable = options.refine == "guided" and not RefineOptions().colour
    return (GuidedRefineStage if fusable else RefineStage)(options, context)


STAGE = StageSpec(
    name="refine", phase="full", make=make_refine, upsamples=True,
    reads=("frame", "work_frame", "work_matte"), writes=("matte", "matte_source", "guided_coefficients"),
    web="refine", constants={"radius": RefineOptions.radius, "eps": RefineOptions.eps, "reach": RefineOptions.reach},
    summary="blurry network edge: fast guided filter against the full-res frame; high: closed-form "
            "matting of the band (photos)",
    options=[Opt("refine", "guided", "edge refinement: guided, bilinear (none), high (closed-form matting, "
                 "slow, photos)", choices=REFINE_MODES, raw="bilinear")],
    enabled=lambda o: o.refine != "bilinear",
)
