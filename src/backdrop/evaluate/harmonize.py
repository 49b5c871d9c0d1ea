"""``backdrop eval --harmonize IMAGES TRUTH``: does relighting restore a person whose light was changed?

The protocol of the image-harmonization papers (iHarmony4: Cong et al., "DoveNet", CVPR 2020;
Harmonizer, Ke et al., ECCV 2022) on our own photos: a photo of a person is harmonious as shot,
so changing the light of the person only (``evaluate/perturb.py``: exposure, colour temperature,
contrast, saturation, a dark and noisy room) and keeping the background makes an input whose
true harmonization is the photo. Each method gets the input and the true matte (so the matte's
own errors take no part) and its output is scored against the photo:

- **fMSE**: mean squared error over the person, weighted by the true alpha, in 8-bit levels
  squared (iHarmony4's foreground MSE, for a soft matte);
- **PSNR** of the whole picture, dB (capped at 60: an untouched photo scores 60, not infinity).

Methods: ``none`` (the input), ``colour_match`` (the brightness-only match Backdrop had before
issue 23, kept here as an anchor), ``reinhard`` (Reinhard et al., "Color Transfer between Images",
IEEE CG&A 2001: the person's mean and spread per l-alpha-beta channel set to the background's)
and ``relight`` (the pipeline's relight stage, through :meth:`Pipeline.composite` with the photo's
own background behind the person). Every photo is also scored unperturbed (kind ``none``): a
correction must leave a good picture nearly alone.

Photos are split by a hash of their name (``SET/stem``, :func:`named_people`) into a *tuning* part (70 %) and a *held-out* part
(30 %): constants are fitted on the first only (``benchmarks/harmonize.py --tune``) and both are
reported. The draw of each perturbation is seeded by the photo's name and the kind.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .perturb import KINDS, perturb
from .report import EvalReport
from .scoring import progress_bar
from .sources import iter_people

METHODS = ("none", "colour_match", "reinhard", "relight")
HELD_OUT_SHARE = 30  # percent of photos, by name hash
PSNR_CAP = 60.0
MAX_SIDE = 512  # photos are scored at this long side at most


def held_out(name: str) -> bool:
    """Whether photo ``name`` is in the held-out split (never used to fit anything)."""
    return zlib.crc32(name.encode()) % 100 < HELD_OUT_SHARE


def named_people(images: str | Path, truth: str | Path, limit: int | None = None):
    """:func:`~backdrop.evaluate.sources.iter_people` with each photo named ``SET/stem``, ``SET``
    the folder that holds ``images`` (portraits-soft/images -> ``portraits-soft/girl-2122927_1280``):
    the name seeds the perturbations and picks the split, so the two sets' numbered photos
    (``1``, ``2``, ... in both) are told apart, and the eval, the benchmark, the tuning and
    ``backdrop train relight`` all split the same photos the same way."""
    folder = Path(images).resolve().parent.name
    for name, photo, alpha in iter_people(images, truth, limit):
        yield f"{folder}/{name}", photo, alpha


@dataclass
class HarmonizeCase:
    """One input: ``photo`` (the truth, RGB uint8), its ``alpha`` and the perturbed ``image``."""

    name: str
    kind: str  # one of perturb.KINDS, or "none" (unperturbed)
    amount: float
    photo: np.ndarray
    alpha: np.ndarray
    image: np.ndarray

    @property
    def split(self) -> str:
        return "held_out" if held_out(self.name) else "tuning"


def harmonize_cases(people: Iterable[tuple[str, np.ndarray, np.ndarray]], kinds: Iterable[str] = ("none", *KINDS),
                    seed: int = 0) -> Iterator[HarmonizeCase]:
    """Every photo (name, RGB uint8, float32 alpha) under every kind, scaled to ``MAX_SIDE``."""
    kinds = tuple(kinds)
    for name, photo, alpha in people:
        h, w = photo.shape[:2]
        k = MAX_SIDE / max(h, w)
        if k < 1:
            size = (max(1, round(w * k)), max(1, round(h * k)))
            photo = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        if float(alpha.mean()) < 0.01:
            continue  # a person too small to score
        for kind in kinds:
            if kind == "none":
                yield HarmonizeCase(name, kind, 0.0, photo, alpha, photo)
            else:
                image, amount = perturb(photo, alpha, name, kind, seed)
                yield HarmonizeCase(name, kind, amount, photo, alpha, image)


def fmse(output: np.ndarray, truth: np.ndarray, alpha: np.ndarray) -> float:
    """Alpha-weighted mean squared error over the person, in levels squared."""
    d = ((output.astype(np.float32) - truth.astype(np.float32)) ** 2).mean(axis=2)
    return float((d * alpha).sum() / max(float(alpha.sum()), 1e-6))


def psnr(output: np.ndarray, truth: np.ndarray) -> float:
    """PSNR (dB) of the whole picture, capped at ``PSNR_CAP``."""
    m = float(((output.astype(np.float32) - truth.astype(np.float32)) ** 2).mean())
    return PSNR_CAP if m <= 255.0**2 * 10 ** (-PSNR_CAP / 10) else float(10 * math.log10(255.0**2 / m))


def blend_person(image: np.ndarray, person: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    return np.clip(a * person.astype(np.float32) + (1 - a) * image.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)


def colour_match(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Backdrop's colour match before issue 23 (``compose/effects.py match_brightness`` at strength
    1): the person's mean grey level times the gain to the whole background's, within 0.6..1.6."""
    person = alpha > 0.5
    if not person.any():
        return image
    lum = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gain = float(np.clip((lum.mean() + 1) / (lum[person].mean() + 1), 0.6, 1.6))
    return blend_person(image, np.clip(image.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8), alpha)


_RGB_TO_LMS = np.float32([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS_TO_LAB = (np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)])
               @ np.float32([[1, 1, 1], [1, 1, -2], [1, -1, 0]])).astype(np.float32)


def _to_lab(rgb: np.ndarray) -> np.ndarray:
    lms = np.maximum(rgb.reshape(-1, 3).astype(np.float32) / 255 @ _RGB_TO_LMS.T, 1e-4)
    return np.log10(lms) @ _LMS_TO_LAB.T


def _from_lab(lab: np.ndarray, shape) -> np.ndarray:
    lms = 10 ** (lab @ np.linalg.inv(_LMS_TO_LAB).T)
    rgb = lms @ np.linalg.inv(_RGB_TO_LMS).T
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8).reshape(shape)


def reinhard(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Reinhard colour transfer of the person (weights: alpha) to the background (``1 - alpha``)
    in the l-alpha-beta space of the paper; the person blended back with alpha."""
    lab = _to_lab(image)
    a = alpha.reshape(-1)
    out = lab.copy()
    wp, wb = a / max(a.sum(), 1e-6), (1 - a) / max((1 - a).sum(), 1e-6)
    mp, mb = wp @ lab, wb @ lab
    sp = np.sqrt(np.maximum(wp @ (lab - mp) ** 2, 1e-8))
    sb = np.sqrt(np.maximum(wb @ (lab - mb) ** 2, 1e-8))
    out = (lab - mp) * (sb / sp) + mb
    return blend_person(image, _from_lab(out, image.shape), alpha)


def relight_method(options: Any = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The relight stage through the pipeline: only it on (``options``: a PipelineOptions, default
    the bare pipeline with the declared relight strength), over the input as its own background."""
    from ..compose.backgrounds.image import ImageBackground
    from ..engine import Pipeline, PipelineOptions
    from ..engine.options import OPTIONS

    if options is None:
        options = PipelineOptions.raw(relight=OPTIONS["relight"].default, quiet=True)
    pipe = Pipeline(background="#000000", options=options)  # the model is loaded but never run

    def run(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        pipe.reset()
        pipe.background = ImageBackground(image, "input")
        return pipe.composite(image, alpha.astype(np.float32), index=0)

    return run


def methods(options: Any = None, only: Iterable[str] = METHODS) -> dict[str, Callable]:
    table = {"none": lambda image, alpha: image, "colour_match": colour_match, "reinhard": reinhard}
    out = {}
    for name in only:
        if name not in METHODS:
            raise InputError(f"unknown harmonization method {name!r}: one of {', '.join(METHODS)}")
        out[name] = relight_method(options) if name == "relight" else table[name]
    return out


def score_cases(cases: Iterable[HarmonizeCase], runs: dict[str, Callable], *, quiet: bool = True,
                total: int | None = None) -> list[dict[str, Any]]:
    """One row per (case, method): name, kind, amount, split, method, fmse, psnr."""
    rows = []
    with progress_bar(total, "harmonize", quiet) as bar:
        for case in cases:
            for method, run in runs.items():
                out = run(case.image, case.alpha)
                rows.append({"name": case.name, "kind": case.kind, "amount": case.amount, "split": case.split,
                             "method": method, "fmse": fmse(out, case.photo, case.alpha),
                             "psnr": psnr(out, case.photo)})
            bar.update(1)
    return rows


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Means by split ("all", "tuning", "held_out") x method x kind ("perturbed": every kind but
    none), and the two ratios the targets name, per split and method."""
    out: dict[str, Any] = {}
    for split in ("all", "tuning", "held_out"):
        part = [r for r in rows if split == "all" or r["split"] == split]
        by: dict[str, Any] = {}
        for method in dict.fromkeys(r["method"] for r in part):
            mine = [r for r in part if r["method"] == method]
            cell = {}
            for kind in ("perturbed", "none", *KINDS):
                sel = [r for r in mine if (r["kind"] != "none" if kind == "perturbed" else r["kind"] == kind)]
                if sel:
                    cell[kind] = {"fmse": float(np.mean([r["fmse"] for r in sel])),
                                  "psnr": float(np.mean([r["psnr"] for r in sel])), "count": len(sel)}
            by[method] = cell
        base = by.get("none", {}).get("perturbed", {}).get("fmse")
        for method, cell in by.items():
            if base and "perturbed" in cell:
                cell["perturbed_vs_none"] = cell["perturbed"]["fmse"] / base
            if base and "none" in cell:
                cell["unperturbed_vs_none_perturbed"] = cell["none"]["fmse"] / base
        out[split] = by
    return out


def evaluate_harmonize(images: str | Path, truth: str | Path, *, options: Any = None, limit: int | None = None,
                       only: Iterable[str] = METHODS, seed: int = 0, quiet: bool = True) -> EvalReport:
    """Score every method on every photo of ``images`` (alphas in ``truth``) and its perturbations."""
    for p, what in ((images, "images"), (truth, "ground truth")):
        if not Path(p).exists():
            raise InputError(f"{what} not found: {p}")
    runs = methods(options, only)
    rows = score_cases(harmonize_cases(named_people(images, truth, limit), seed=seed), runs, quiet=quiet)
    if not rows:
        raise InputError(f"no person to score in {images}")
    report = EvalReport("harmonize", str(images), str(truth), summarize(rows), rows)
    report.notes.append(f"held out: {HELD_OUT_SHARE}% of photos by name hash; perturbations seeded ({seed})")
    return report


def format_harmonize_report(report: EvalReport, **_: Any) -> str:
    """The terminal table: fMSE (PSNR) per method and kind, for each split."""
    kinds = ("perturbed", "none", *KINDS)
    lines = [f"backdrop eval --harmonize: {report.source} against {report.truth}",
             "  fMSE over the person (levels^2, lower is better) / PSNR dB; 'none' row kind = unperturbed photos"]
    for split, by in report.summary.items():
        if not by:
            continue
        n = by.get("none", {}).get("none", {}).get("count", 0)
        lines += ["", f"  {split} ({n} photos)", "  " + f"{'method':<13}" + "".join(f"{k:>17}" for k in kinds)
                  + f"{'vs none':>9}{'unpert.':>9}"]
        for method, cell in by.items():
            vals = "".join(f"{cell[k]['fmse']:>9.1f} /{cell[k]['psnr']:>5.1f}" if k in cell else f"{'-':>17}"
                           for k in kinds)
            lines.append(f"  {method:<13}{vals}{cell.get('perturbed_vs_none', math.nan):>9.3f}"
                         f"{cell.get('unperturbed_vs_none_perturbed', math.nan):>9.3f}")
    lines += [f"  note: {n}" for n in report.notes]
    return "\n".join(lines)
