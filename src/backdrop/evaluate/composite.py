"""Composite evaluation (``backdrop eval --composite BACKGROUNDS IMAGES TRUTH``): score what the user sees.

People with a known soft alpha ``a`` (photos + alpha mattes, e.g. ``portraits-soft``) are placed
over person-free photos: image ``i`` (natural name order) over background ``i mod n`` (natural
name order), cover-resized to the image's size. That makes an input ``I = a*F + (1-a)*B_old``
whose true composite over any new background is known, ``T = a*F + (1-a)*B_new``. ``F``, the
person's colours, is estimated once from the photo and its true alpha with Blur-Fusion
(``foreground="blur-fusion"``, the default) or taken as the photo itself (``"photo"``; its soft
band is then still mixed with the photo's own studio background): see :mod:`.sources`.

The pipeline runs on ``I`` *with its composite output* over two flat new backgrounds, where a
halo shows most: light ``#f0f0f0`` and dark ``#101010``. Each image and each background is an
independent stream: ``pipe.reset()``, then one frame through ``pipe.stream`` (for one frame the
same as ``pipe(frame)``; it also hands back the matte). Per image: the alpha metrics of
``backdrop eval`` (IoU, boundary F, MAD, MSE, Grad, Conn, SAD) on the matte, and for light and
dark the mean absolute colour error against ``T`` in 8-bit levels (/255 units) over the whole
frame and in the edge band (:func:`backdrop.metrics.edge_band`: truth strictly between 0.02 and
0.98, plus both sides of hard steps, dilated by 3 px). ``T`` is rounded as the pipeline's blend
rounds, so a perfect matte with perfect colours scores exactly 0.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..compose.backgrounds import parse_background
from ..compose.backgrounds.colour import format_colour
from ..errors import InputError, OutputError
from ..io.image import write_image
from ..metrics import EDGE_BAND_DILATE, IoUAccumulator, composite_error, edge_band, true_composite
from .report import EvalReport, METRIC_LABELS
from .scoring import IMAGE_METRICS, finite_mean, image_metrics, make_pipeline, pipeline_config, progress_bar
from .sources import fit_background, iter_people, load_backgrounds, true_foreground
from .worst import WORST_PANEL_HEIGHT, labelled_panels

NEW_BACKGROUNDS: dict[str, tuple[int, int, int]] = {"light": (0xF0, 0xF0, 0xF0), "dark": (0x10, 0x10, 0x10)}
COMPOSITE_METRICS = ("light_frame", "light_band", "dark_frame", "dark_band")
WORST_BY = "dark_band"  # --worst ranks by the dark background's edge-band error; pictures over dark


@dataclass
class CompositeCase:
    """One synthetic input: ``image`` = I (RGB uint8), its true ``alpha`` (float32 HxW) and the
    person's true colours ``foreground`` = F (RGB uint8), from which every true composite follows."""

    name: str
    image: np.ndarray
    alpha: np.ndarray
    foreground: np.ndarray
    old_background: str = ""


def make_case(name: str, photo: np.ndarray, alpha: np.ndarray, old_background: np.ndarray, *,
              foreground: str = "blur-fusion", background_name: str = "") -> CompositeCase:
    """The person of ``photo`` (true ``alpha``) over ``old_background`` (any size: cover-resized)."""
    h, w = photo.shape[:2]
    alpha = np.asarray(alpha, dtype=np.float32)
    F = true_foreground(photo, alpha, foreground)
    image = true_composite(F, alpha, fit_background(old_background, h, w))
    return CompositeCase(name, image, alpha, F, background_name)


def composite_cases(backgrounds: str | Path | list[tuple[str, np.ndarray]], images: str | Path, truth: str | Path,
                    *, foreground: str = "blur-fusion", limit: int | None = None) -> Iterator[CompositeCase]:
    """The cases of a folder of photos + alphas over a folder of backgrounds (cycled in name order;
    or a list of (name, RGB image) already loaded), made one at a time."""
    bgs = backgrounds if isinstance(backgrounds, list) else load_backgrounds(backgrounds)
    for i, (name, photo, alpha) in enumerate(iter_people(images, truth, limit)):
        bg_name, bg = bgs[i % len(bgs)]
        yield make_case(name, photo, alpha, bg, foreground=foreground, background_name=bg_name)


def run_over(pipe, image: np.ndarray, background: Any) -> tuple[np.ndarray, np.ndarray]:
    """(matte, composite) of one independent frame with ``pipe`` composing over ``background``."""
    pipe.reset()
    pipe.background = parse_background(background)
    for _, matte, out in pipe.stream([image]):
        return matte, out
    raise RuntimeError("the pipeline returned no frame")  # pragma: no cover


def score_case(pipe, case: CompositeCase, *, colours: dict[str, tuple[int, int, int]] = NEW_BACKGROUNDS,
               band: float = 3, dilate: int = EDGE_BAND_DILATE) -> tuple[dict[str, Any], dict[str, tuple]]:
    """One case: (metrics row, {colour name: (true composite, our composite)}).

    The row has the alpha metrics of the matte (from the first colour's run), ``<colour>_frame``
    and ``<colour>_band`` colour errors (/255) and ``band_share`` (the band's share of pixels).
    ``pipe`` is a Pipeline (or anything with ``reset``, a settable ``background`` and ``stream``).
    """
    mask = edge_band(case.alpha, dilate=dilate)
    row: dict[str, Any] = {"name": case.name, "old_background": case.old_background,
                           "band_share": float(mask.mean())}
    pictures: dict[str, tuple] = {}
    matte = None
    for cname, rgb in colours.items():
        m, out = run_over(pipe, case.image, tuple(rgb))
        if out.ndim != 3 or out.shape != case.image.shape:
            raise InputError(f"the pipeline's output is {out.shape}, not an RGB composite like {case.image.shape}")
        matte = m if matte is None else matte
        truth = true_composite(case.foreground, case.alpha, np.array(rgb, np.uint8))
        row[f"{cname}_frame"] = composite_error(out, truth)
        row[f"{cname}_band"] = composite_error(out, truth, mask)
        pictures[cname] = (truth, out)
    row["matte"] = matte
    return row, pictures


class _Worst:
    """The ``n`` cases with the largest ``score``, as downscaled input | truth | ours | error pictures."""

    def __init__(self, n: int):
        self.n, self._heap, self._count = max(0, int(n)), [], itertools.count()

    def offer(self, score: float, name: str, caption: str, panels: list[np.ndarray]) -> None:
        if self.n == 0 or not math.isfinite(score):
            return
        key = (score, next(self._count))
        if len(self._heap) >= self.n and key <= self._heap[0][0]:
            return
        h, w = panels[0].shape[:2]
        if h > WORST_PANEL_HEIGHT:
            size = (max(1, round(w * WORST_PANEL_HEIGHT / h)), WORST_PANEL_HEIGHT)
            panels = [cv2.resize(p, size, interpolation=cv2.INTER_AREA) for p in panels]
        else:
            panels = [p.copy() for p in panels]
        heapq.heappush(self._heap, (key, name, caption, panels))
        if len(self._heap) > self.n:
            heapq.heappop(self._heap)

    def write(self, out_dir: Path) -> list[str]:
        if not self._heap:
            return []
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
        paths = []
        for rank, (_, name, caption, panels) in enumerate(sorted(self._heap, reverse=True), 1):
            path = out_dir / f"{rank:02d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}.png"
            write_image(path, composite_side_by_side(panels, caption))
            paths.append(str(path))
        return paths


def colour_error_map(ours: np.ndarray, truth: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """RGB picture of |ours - truth| (mean over channels) x ``gain``, inferno colours (black = no error)."""
    d = np.abs(ours.astype(np.float32) - truth.astype(np.float32)).mean(axis=2) * gain
    heat = cv2.applyColorMap(np.clip(d, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)


def composite_side_by_side(panels: list[np.ndarray], caption: str = "",
                           labels: tuple[str, ...] = ("input", "true composite", "our composite",
                                                      "colour error x4")) -> np.ndarray:
    """Panels of one size side by side, with a caption line and a label over each."""
    return labelled_panels(panels, caption, labels)


def evaluate_composite_cases(cases: Iterable[CompositeCase], *, pipeline=None, options=None,
                             colours: dict[str, tuple[int, int, int]] = NEW_BACKGROUNDS, worst: int = 0,
                             out_dir: str | Path | None = None, band: float = 3, dilate: int = EDGE_BAND_DILATE,
                             quiet: bool = True, total: int | None = None, source: str = "",
                             truth: str | None = None, foreground: str | None = None) -> EvalReport:
    """Score a pipeline on in-memory cases (see the module docstring); an ``EvalReport`` of mode
    ``composite``. ``pipeline`` (its background is replaced during the run and restored after)
    or ``options`` (a new pipeline is made); ``worst`` pictures are over the ``dark`` colour (else
    the last one), ranked by its band error."""
    pipe, owned = make_pipeline(pipeline, options)
    old_background = pipe.background
    acc = IoUAccumulator()
    keeper = _Worst(worst)
    pick = "dark" if "dark" in colours else list(colours)[-1]
    items: list[dict[str, Any]] = []
    try:
        with progress_bar(total, source and Path(source).name or "composite", quiet) as bar:
            for case in cases:
                row, pictures = score_case(pipe, case, colours=colours, band=band, dilate=dilate)
                pred = row.pop("matte")
                row.update(iou=acc.update(pred, case.alpha), **image_metrics(pred, case.alpha, band=band))
                items.append(row)
                t, ours = pictures[pick]
                keeper.offer(row[f"{pick}_band"], case.name,
                             f"{case.name} over {format_colour(colours[pick])}: band error "
                             f"{row[f'{pick}_band']:.2f}/255, frame {row[f'{pick}_frame']:.2f}/255, "
                             f"MAD {row['mad']:.1f}", [case.image, t, ours, colour_error_map(ours, t)])
                bar.update(1)
    finally:
        pipe.background = old_background
        if owned:
            pipe.close()
    if not items:
        raise InputError(f"nothing to score in {source or 'the cases given'}")
    keys = [f"{c}_{k}" for c in colours for k in ("frame", "band")]
    summary: dict[str, Any] = {"count": len(items), "dataset_iou": acc.dataset_iou,
                               **{k: finite_mean(items, k) for k in (*IMAGE_METRICS, *keys, "band_share")},
                               "soft_truth": True,
                               "new_backgrounds": {c: format_colour(rgb) for c, rgb in colours.items()},
                               "foreground": foreground, "edge_band_dilate": dilate}
    report = EvalReport("composite", str(source), str(truth) if truth is not None else None, summary, items,
                        pipeline_config(pipe))
    if worst:
        report.worst = keeper.write(Path(out_dir or "eval-worst"))
    return report


def evaluate_composite(backgrounds: str | Path, images: str | Path, truth: str | Path, *,
                       foreground: str = "blur-fusion", limit: int | None = None, **kwargs: Any) -> EvalReport:
    """``backdrop eval --composite BACKGROUNDS IMAGES TRUTH``: people of ``images`` (alphas in
    ``truth``, matched by stem) over the person-free photos in ``backgrounds``, scored by the
    colour error of the pipeline's composites over light and dark (module docstring). Keywords as
    :func:`evaluate_composite_cases` (``pipeline``, ``options``, ``worst``, ``out_dir``, ...)."""
    for p, what in ((backgrounds, "backgrounds"), (images, "images"), (truth, "ground truth")):
        if not Path(p).exists():
            raise InputError(f"{what} not found: {p}")
    bgs = load_backgrounds(backgrounds)
    n = len(bgs)
    cases = composite_cases(bgs, images, truth, foreground=foreground, limit=limit)
    report = evaluate_composite_cases(cases, source=str(images), truth=str(truth), foreground=foreground, **kwargs)
    report.summary["backgrounds"] = n
    report.notes.append(f"each image over one of {n} background(s) from {backgrounds} (cycled in name order); "
                        f"true colours F: {foreground}")
    return report


COMPOSITE_LABELS = {"frame": "whole frame", "band": "edge band"}


def format_composite_report(report: EvalReport, *, band: float = 3) -> str:
    """The terminal table of a composite evaluation (alpha metrics, then colour error per background)."""
    s, cfg = report.summary, report.config

    def fmt(v, digits=3):
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"

    colours = s.get("new_backgrounds", {})
    lines = [f"backdrop eval --composite: {s['count']} images from {report.source} against {report.truth}",
             f"  model {cfg.get('model', '?')}; true colours F: {s.get('foreground') or '?'}; edge band: "
             f"0.02 < alpha < 0.98 (and hard steps), dilated {s.get('edge_band_dilate')} px = "
             f"{fmt(100 * s['band_share'], 1) if s.get('band_share') is not None else '-'} % of pixels", ""]
    for k in ("iou", "dataset_iou", "boundary_f", "mad", "mse", "grad", "conn", "sad_unknown"):
        if k in s:
            label = METRIC_LABELS[k] + (f" ({band:g}px)" if k == "boundary_f" else "")
            lines.append(f"  {label:<20}  {fmt(s[k], 4 if k in ('iou', 'dataset_iou', 'boundary_f') else 3):>10}")
    heads = [f"{c} {v}" for c, v in colours.items()]
    width = max([16, *map(len, heads)])
    lines += ["", f"  {'colour error (/255)':<20}" + "".join(f"  {h:>{width}}" for h in heads)]
    for part, label in COMPOSITE_LABELS.items():
        lines.append(f"  {label:<20}" + "".join(f"  {fmt(s.get(f'{c}_{part}')):>{width}}" for c in colours))
    pick = "dark_band" if "dark" in colours else None
    scored = [it for it in report.items if pick and it.get(pick) is not None]
    if scored:
        worst = sorted(scored, key=lambda it: -it[pick])[:5]
        lines += ["", "  worst by dark band error: " + ", ".join(f"{it['name']} {it[pick]:.2f}" for it in worst)]
    lines += [f"  note: {n}" for n in report.notes]
    if report.worst:
        lines.append(f"  wrote {len(report.worst)} picture(s) to {Path(report.worst[0]).parent}")
    return "\n".join(lines)
