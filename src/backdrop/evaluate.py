"""The evaluation engine behind ``backdrop eval``: run a pipeline on labelled data and score it.

Three kinds of input:

- **an image set**: a folder of photos and a folder of ground-truth masks or alpha mattes, matched
  by file stem (``12.jpg`` <-> ``12.png``; any format Pillow reads). Every photo is an independent
  stream (the pipeline is reset before each), and gets IoU, boundary F, MAD, MSE, Grad, Conn and
  SAD in the unknown band; the set gets their means plus the dataset-level IoU.
- **a sequence**: a video file, or a folder of frames in name order, with per-frame truth (a
  folder of masks matched by stem, or in order when the names differ or the input is a video;
  or a video of masks, in order). Frames go through ``Pipeline.stream`` in order, so
  temporal stages run as in ``backdrop video``; each frame gets the image metrics and the clip gets
  dtSSD and the flicker score.
- **a sequence without truth**: only the flicker score (see :mod:`backdrop.metrics.temporal`).

Truth smaller or larger than its image, with the same aspect ratio (many published masks were
saved at a reduced size), is resized to the image with bilinear filtering; a different aspect
ratio is an error, since it means the pair does not belong together. Ground truth is read as the
alpha channel when the file has a real one (cut-outs), else as luminance; 16-bit files are scaled.

Everything returns an :class:`EvalReport`; :func:`format_report` renders the terminal table and
:meth:`EvalReport.to_dict` the JSON. ``worst`` writes side-by-side pictures of the worst items.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, OutputError
from .io.image import IMAGE_SUFFIXES, max_pixels, read_image, write_image
from .io.video import VIDEO_SUFFIXES, VideoReader
from .metrics import (DtSSDAccumulator, FlickerAccumulator, IoUAccumulator, boundary_f, conn, grad, mad,
                      mse, sad_unknown)


SOFT_FRACTION = 0.01  # truth with more than 1 % of pixels strictly between 0 and 1 is a soft alpha
WORST_PANEL_HEIGHT = 480  # the side-by-side pictures are scaled down to this panel height
IMAGE_METRICS = ("iou", "boundary_f", "mad", "mse", "grad", "conn", "sad_unknown")
METRIC_LABELS = {
    "iou": "mean IoU", "dataset_iou": "dataset IoU", "boundary_f": "boundary F",
    "mad": "MAD x1e3", "mse": "MSE x1e3", "grad": "Grad /1e3", "conn": "Conn /1e3",
    "sad_unknown": "SAD unknown /1e3", "dtssd": "dtSSD", "flicker": "flicker x1e3",
    "static_fraction": "static share",
}
HIGHER_IS_BETTER = {"iou", "dataset_iou", "boundary_f"}


# -- reading truth ---------------------------------------------------------------------------------

def _alpha_array(im: Image.Image) -> np.ndarray:
    """Float64 HxW in [0, 1] from any Pillow mode: alpha if present and used, else luminance."""
    bands = im.getbands()
    if "A" in bands or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.min() < 255:  # a cut-out: the alpha channel is the matte
            return alpha.astype(np.float64) / 255.0
        im = im.convert("RGB")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a / (65535.0 if a.max() > 255 else 255.0), 0, 1)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        return np.clip(a if a.max() <= 1.0 else a / 255.0, 0, 1)
    return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def read_truth(path: Path) -> tuple[np.ndarray, bool]:
    """Read a ground-truth mask or alpha matte: (float32 HxW in [0, 1], is_soft)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ground truth not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > max_pixels():
                    raise InputError(f"ground truth {path.name} declares {w}x{h} pixels, over the limit")
                im.load()
                alpha = _alpha_array(ImageOps.exif_transpose(im))
    except InputError:
        raise
    except UnidentifiedImageError:
        raise InputError(f"ground truth is not an image: {path}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"corrupt ground truth {path.name}: {str(exc).splitlines()[0]}") from None
    return alpha.astype(np.float32), is_soft(alpha)


def is_soft(alpha: np.ndarray) -> bool:
    """True for an alpha matte, False for a binary mask (judged before any resizing)."""
    eps = 0.5 / 255
    return float(np.mean((alpha > eps) & (alpha < 1 - eps))) > SOFT_FRACTION


def fit_truth(truth: np.ndarray, shape: tuple[int, ...], name: str = "ground truth") -> np.ndarray:
    """Resize ``truth`` to the image size ``shape`` (H, W) if it has the same aspect ratio."""
    ih, iw = shape[:2]
    th, tw = truth.shape[:2]
    if (th, tw) == (ih, iw):
        return truth
    # same aspect within rounding: the truth's width scaled by the height ratio lands within 2 %
    if abs(tw * ih / th - iw) > max(2.0, 0.02 * iw):
        raise InputError(f"{name} is {tw}x{th} but its image is {iw}x{ih} (different aspect ratio)")
    interp = cv2.INTER_AREA if th > ih else cv2.INTER_LINEAR
    return np.clip(cv2.resize(truth, (iw, ih), interpolation=interp), 0, 1).astype(np.float32)


# -- finding files ---------------------------------------------------------------------------------

def natural_key(name: str) -> list:
    """Sort key that puts ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> dict[str, Path]:
    """{stem: path} of the images in ``folder`` (not recursive), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    out: dict[str, Path] = {}
    files = sorted((p for p in folder.iterdir()
                    if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    for p in files:
        if p.stem in out:
            raise InputError(f"two files in {folder} share the name {p.stem!r} ({out[p.stem].name}, {p.name})")
        out[p.stem] = p
    return out


def match_pairs(images: Path, truth: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(name, image, truth) pairs matched by file stem, plus unmatched image and truth stems."""
    images, truth = Path(images), Path(truth)
    if images.is_file():
        if not truth.is_file():
            raise InputError(f"for a single image the ground truth must be a file too: {truth}")
        return [(images.stem, images, truth)], [], []
    imgs, gts = list_images(images), list_images(truth)
    if not imgs:
        raise InputError(f"no images (.jpg/.png/.webp...) in folder {images}")
    pairs = [(s, p, gts[s]) for s, p in imgs.items() if s in gts]
    if not pairs:
        raise InputError(f"no image in {images} has a ground truth of the same name in {truth}")
    return pairs, [s for s in imgs if s not in gts], [s for s in gts if s not in imgs]


def is_video(path: Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in VIDEO_SUFFIXES


def looks_like_frames(folder: Path) -> bool:
    """A folder of numbered frames of one size (``00000.jpg``...), i.e. a sequence, not photos."""
    files = list(list_images(folder).items())
    if len(files) < 3 or not all(s.isdigit() for s, _ in files):
        return False
    numbers = [int(s) for s, _ in files]
    if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        return False
    sizes = set()
    for _, p in files:
        try:
            with Image.open(p) as im:
                sizes.add(im.size)
        except (OSError, UnidentifiedImageError):
            return False
        if len(sizes) > 1:
            return False
    return True


# -- the report ------------------------------------------------------------------------------------

def json_safe(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, paths -> str."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (str, int, bool)):
        return v
    return str(v)


@dataclass
class EvalReport:
    """What an evaluation found. ``summary`` holds the aggregates, ``items`` one dict per image or
    frame (``name`` plus its metrics), ``worst`` the paths of the pictures written."""

    kind: str  # "images", "sequence" (with truth) or "video" (no truth: flicker only)
    source: str
    truth: str | None
    summary: dict[str, Any]
    items: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    worst: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


def _mean(items: list[dict], key: str) -> float:
    vals = [it[key] for it in items if it.get(key) is not None and math.isfinite(it[key])]
    return float(np.mean(vals)) if vals else math.nan


def image_metrics(pred: np.ndarray, gt: np.ndarray, *, band: float = 3) -> dict[str, float]:
    """Every per-image metric of a prediction against its truth (see :mod:`backdrop.metrics`)."""
    return {"boundary_f": boundary_f(pred, gt, band=band), "mad": mad(pred, gt), "mse": mse(pred, gt),
            "grad": grad(pred, gt), "conn": conn(pred, gt), "sad_unknown": sad_unknown(pred, gt)}


# -- worst-case pictures ---------------------------------------------------------------------------

class WorstKeeper:
    """Keeps the ``n`` items with the lowest ``score`` (image, truth, prediction), downscaled, for pictures."""

    def __init__(self, n: int):
        self.n = max(0, int(n))
        self._heap: list = []
        self._count = itertools.count()

    def offer(self, score: float, name: str, image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
              caption: str, labels: tuple[str, str, str, str]) -> None:
        if self.n == 0 or not math.isfinite(score):
            return
        key = (-score, next(self._count))
        if len(self._heap) >= self.n and key <= self._heap[0][0]:
            return  # not worse than the best of the kept ones
        small = _downscale(image, truth, pred)
        heapq.heappush(self._heap, (key, (score, name, *small, caption, labels)))
        if len(self._heap) > self.n:
            heapq.heappop(self._heap)

    def write(self, out_dir: Path) -> list[str]:
        """Write ``NN_name.png`` (worst first) into ``out_dir``; return the paths."""
        if not self._heap:
            return []
        out_dir = Path(out_dir)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder {out_dir}: {exc.strerror}") from None
        ranked = sorted((entry for _, entry in self._heap), key=lambda e: e[0])
        paths = []
        for rank, (_, name, image, truth, pred, caption, labels) in enumerate(ranked, 1):
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80]
            path = out_dir / f"{rank:02d}_{safe}.png"
            write_image(path, side_by_side(image, truth, pred, caption, labels))
            paths.append(str(path))
        return paths


def _downscale(image: np.ndarray, truth: np.ndarray, pred: np.ndarray):
    h, w = image.shape[:2]
    if h <= WORST_PANEL_HEIGHT:
        return image.copy(), truth.copy(), pred.copy()
    size = (max(1, round(w * WORST_PANEL_HEIGHT / h)), WORST_PANEL_HEIGHT)
    return tuple(cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in (image, truth, pred))


def error_map(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB picture of the error over a dimmed grey image: red = extra (predicted person that is
    not), blue = missed (person the prediction left out), brightness = size of the error."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) * 0.3
    err = pred.astype(np.float32) - truth.astype(np.float32)
    extra, missed = np.clip(err, 0, 1), np.clip(-err, 0, 1)
    out = np.dstack([grey * (1 - extra) + 255 * extra,
                     grey * (1 - np.maximum(extra, missed)) + 110 * missed,
                     grey * (1 - extra) + 255 * missed])
    return np.clip(out, 0, 255).astype(np.uint8)


def side_by_side(image: np.ndarray, truth: np.ndarray, pred: np.ndarray, caption: str = "",
                 labels: tuple[str, str, str, str] = ("image", "ground truth", "prediction", "error")
                 ) -> np.ndarray:
    """image | truth | prediction | error, with a caption line and a label over each panel."""
    def grey(m):
        g = np.clip(m * 255 + 0.5, 0, 255).astype(np.uint8)
        return np.dstack([g, g, g])

    panels = [image, grey(truth), grey(pred), error_map(image, truth, pred)]
    h, w = image.shape[:2]
    gap, head = 4, 40
    canvas = np.full((h + head, 4 * w + 3 * gap, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, caption[:200], (4, 15), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    for i, (panel, label) in enumerate(zip(panels, labels)):
        x = i * (w + gap)
        canvas[head:, x:x + w] = panel
        cv2.putText(canvas, label, (x + 4, 33), font, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return canvas


# -- running ---------------------------------------------------------------------------------------

def _make_pipeline(pipeline, options):
    if pipeline is not None:
        return pipeline, False
    from .pipeline import Pipeline

    return Pipeline(background="matte", options=options), True


def _config(pipe) -> dict[str, Any]:
    opts = getattr(pipe, "options", None)
    try:
        return asdict(opts) if opts is not None else {}
    except TypeError:
        return {}


def _progress(total: int | None, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total or None, desc=desc, unit="img", disable=quiet or not sys.stderr.isatty(),
                dynamic_ncols=True, leave=False)


def evaluate_images(images: str | Path, truth: str | Path, *, pipeline=None, options=None,
                    worst: int = 0, out_dir: str | Path | None = None, limit: int | None = None,
                    band: float = 3, quiet: bool = True) -> EvalReport:
    """Score a pipeline on a set of independent photos with ground truth (see module docstring)."""
    pairs, lone_images, lone_truth = match_pairs(Path(images), Path(truth))
    if limit:
        pairs = pairs[:limit]
    pipe, owned = _make_pipeline(pipeline, options)
    acc = IoUAccumulator()
    keeper = WorstKeeper(worst)
    items: list[dict[str, Any]] = []
    resized = soft = 0
    try:
        with _progress(len(pairs), Path(images).name, quiet) as bar:
            for name, img_path, gt_path in pairs:
                image = read_image(img_path)
                gt, gt_soft = read_truth(gt_path)
                if gt.shape != image.shape[:2]:
                    resized += 1
                    gt = fit_truth(gt, image.shape, f"ground truth {gt_path.name}")
                soft += gt_soft
                pipe.reset()  # photos are independent: no state carried between them
                pred = pipe.matte(image)
                item = {"name": name, "iou": acc.update(pred, gt), **image_metrics(pred, gt, band=band),
                        "soft_truth": gt_soft}
                items.append(item)
                keeper.offer(item["iou"], name, image, gt, pred,
                             f"{name}: IoU {item['iou']:.3f}  boundary F {item['boundary_f']:.3f}  "
                             f"MAD {item['mad']:.1f}", ("image", "ground truth", "prediction",
                                                        "error: red extra, blue missed"))
                bar.update(1)
    finally:
        if owned:
            pipe.close()
    summary = {"count": len(items), "dataset_iou": acc.dataset_iou,
               **{k: _mean(items, k) for k in IMAGE_METRICS},
               "soft_truth": soft > len(items) / 2, "truth_resized": resized,
               "unmatched_images": len(lone_images), "unmatched_truth": len(lone_truth)}
    notes = []
    if lone_images:
        notes.append(f"{len(lone_images)} image(s) without ground truth skipped (e.g. {lone_images[0]})")
    if resized:
        notes.append(f"{resized} ground truth file(s) resized to their image (same aspect ratio)")
    report = EvalReport("images", str(images), str(truth), summary, items, _config(pipe), notes=notes)
    if worst:
        report.worst = keeper.write(Path(out_dir or "eval-worst"))
    return report


@dataclass
class _Frame:
    name: str
    image: np.ndarray
    truth: np.ndarray | None = None
    truth_soft: bool = False


FrameLoaders = Iterator[tuple[str, Callable[[], np.ndarray]]]


def _frame_source(source: Path, limit: int | None) -> tuple[FrameLoaders, list[str] | None]:
    """(name, loader) per frame in order; plus the frame names when known in advance (folder)."""
    if source.is_dir():
        files = list(list_images(source).items())
        if not files:
            raise InputError(f"no frames (.jpg/.png...) in folder {source}")
        files = files[:limit] if limit else files
        return ((s, (lambda p=p: read_image(p))) for s, p in files), [s for s, _ in files]
    if not source.exists():
        raise InputError(f"input not found: {source}")
    reader = VideoReader(source)

    def gen():
        try:
            for f in reader:
                if limit and f.index >= limit:
                    break
                yield f"{f.index:05d}", (lambda img=f.image: img)
        finally:
            reader.close()

    return gen(), None


def _truth_source(truth: Path, names: list[str] | None) -> Callable[[str, int], tuple[np.ndarray, bool]]:
    """A function (frame name, frame index) -> (truth matte, soft) for a folder or a video."""
    if truth.is_dir():
        gts = list_images(truth)
        if not gts:
            raise InputError(f"no ground-truth masks in folder {truth}")
        by_stem = names is not None and all(n in gts for n in names)
        ordered = list(gts.values())
        if names is not None and not by_stem and len(names) > len(ordered):
            raise InputError(f"{len(names)} frames but only {len(ordered)} ground-truth masks in {truth} "
                             "(and their names do not match the frames)")

        def from_folder(name: str, index: int):
            if by_stem:
                return read_truth(gts[name])
            if index >= len(ordered):
                raise InputError(f"more frames than ground-truth masks ({len(ordered)}) in {truth}")
            return read_truth(ordered[index])

        return from_folder
    if not truth.exists():
        raise InputError(f"ground truth not found: {truth}")
    if not is_video(truth):
        raise InputError(f"ground truth for a video must be a folder of masks or a video: {truth}")
    frames = iter(VideoReader(truth))

    def from_video(name: str, index: int):
        try:
            f = next(frames)
        except StopIteration:
            raise InputError(f"the ground-truth video {truth.name} has fewer frames than the input") from None
        a = f.image.astype(np.float32).mean(axis=2) / 255.0
        return a, is_soft(a)

    return from_video


def evaluate_sequence(source: str | Path, truth: str | Path | None = None, *, pipeline=None, options=None,
                      worst: int = 0, out_dir: str | Path | None = None, limit: int | None = None,
                      band: float = 3, motion_threshold: float = 10.0, quiet: bool = True) -> EvalReport:
    """Score a pipeline on consecutive frames (a video or a folder of frames).

    With per-frame truth: image metrics per frame, their means, dataset IoU, dtSSD and flicker.
    Without: the flicker score only (and ``worst`` pictures of the frames that flickered most:
    frame | previous matte | matte | change between them).
    """
    source = Path(source)
    truth_path = Path(truth) if truth is not None else None
    frames, names = _frame_source(source, limit)
    truth_of = _truth_source(truth_path, names) if truth_path is not None else None
    pipe, owned = _make_pipeline(pipeline, options)

    def items() -> Iterator[_Frame]:
        size = None
        for index, (name, load) in enumerate(frames):
            image = load()
            if size is None:
                size = image.shape
            elif image.shape != size:
                raise InputError(f"frame {name} is {image.shape[1]}x{image.shape[0]}, not "
                                 f"{size[1]}x{size[0]} like the first: not one sequence")
            item = _Frame(name, image)
            if truth_of is not None:
                gt, item.truth_soft = truth_of(name, index)
                item.truth = fit_truth(gt, image.shape, f"ground truth of frame {name}")
            yield item

    acc = IoUAccumulator()
    dts = DtSSDAccumulator()
    flick = FlickerAccumulator(motion_threshold=motion_threshold)
    keeper = WorstKeeper(worst)
    rows: list[dict[str, Any]] = []
    prev_matte = None
    try:
        pipe.reset()
        with _progress(len(names) if names else None, source.name, quiet) as bar:
            for item, pred, _ in pipe.stream(items(), image_of=lambda it: it.image):
                row: dict[str, Any] = {"name": item.name, "flicker": flick.update(item.image, pred)}
                if item.truth is not None:
                    gt = item.truth
                    row.update(iou=acc.update(pred, gt), **image_metrics(pred, gt, band=band),
                               dtssd=dts.update(pred, gt), soft_truth=item.truth_soft)
                    keeper.offer(row["iou"], item.name, item.image, gt, pred,
                                 f"frame {item.name}: IoU {row['iou']:.3f}  boundary F {row['boundary_f']:.3f}",
                                 ("frame", "ground truth", "prediction", "error: red extra, blue missed"))
                elif prev_matte is not None and row["flicker"] is not None:
                    keeper.offer(-row["flicker"], item.name, item.image, prev_matte, pred,
                                 f"frame {item.name}: flicker {row['flicker']:.2f} (x1e3)",
                                 ("frame", "previous matte", "matte", "change: red up, blue down"))
                prev_matte = pred
                rows.append(row)
                bar.update(1)
    finally:
        if owned:
            pipe.close()
    if not rows:
        raise InputError(f"no frames in {source}")
    summary: dict[str, Any] = {"count": len(rows), "flicker": flick.value, "static_fraction": flick.static_fraction}
    if truth_path is not None:
        summary.update({"dataset_iou": acc.dataset_iou, **{k: _mean(rows, k) for k in IMAGE_METRICS},
                        "dtssd": dts.value, "soft_truth": sum(r["soft_truth"] for r in rows) > len(rows) / 2})
    kind = "sequence" if truth_path is not None else "video"
    report = EvalReport(kind, str(source), str(truth_path) if truth_path else None, summary, rows, _config(pipe))
    if len(rows) < 2:
        report.notes.append("fewer than two frames: no temporal metric")
    if worst:
        report.worst = keeper.write(Path(out_dir or "eval-worst"))
    return report


def evaluate(source: str | Path, truth: str | Path | None = None, *, mode: str = "auto", **kwargs: Any) -> EvalReport:
    """Evaluate ``source`` against ``truth``, choosing images vs. sequence.

    ``mode``: ``"images"`` (independent photos), ``"sequence"`` (consecutive frames) or ``"auto"``:
    a video file, a folder without truth, or a folder of consecutively numbered frames of one size
    is a sequence; anything else is an image set.
    """
    source = Path(source)
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if truth is not None and not Path(truth).exists():
        raise InputError(f"ground truth not found: {truth}")
    if mode not in ("auto", "images", "sequence"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode == "auto":
        if is_video(source) or truth is None:
            mode = "sequence"
        elif source.is_dir() and looks_like_frames(source):
            mode = "sequence"
        else:
            mode = "images"
    if mode == "images":
        if truth is None:
            raise InputError("an image set needs ground truth: backdrop eval IMAGES TRUTH")
        if is_video(source):
            raise InputError(f"{source.name} is a video: it cannot be scored as an image set")
        return evaluate_images(source, truth, **{k: v for k, v in kwargs.items() if k != "motion_threshold"})
    if source.is_file() and not is_video(source):
        if source.suffix.lower() in IMAGE_SUFFIXES:
            raise InputError(f"an image needs its ground truth: backdrop eval {source.name} TRUTH")
        raise InputError(f"not a video or a folder of frames: {source}")
    return evaluate_sequence(source, truth, **kwargs)


# -- terminal table --------------------------------------------------------------------------------

def _fmt(key: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if key in ("iou", "dataset_iou", "boundary_f", "static_fraction"):
        return f"{v:.4f}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def format_report(report: EvalReport, *, band: float = 3, show_worst: int = 5) -> str:
    """The human-readable table ``backdrop eval`` prints."""
    s = report.summary
    cfg = report.config
    what = {"images": "images", "sequence": "frames", "video": "frames (no ground truth)"}[report.kind]
    lines = [f"backdrop eval: {s['count']} {what} from {report.source}"
             + (f" against {report.truth}" if report.truth else ""),
             f"  model {cfg.get('model', '?')}" + (", soft truth" if s.get("soft_truth") else "")]
    order = ["iou", "dataset_iou", "boundary_f", "mad", "mse", "grad", "conn", "sad_unknown", "dtssd",
             "flicker", "static_fraction"]
    rows = [(METRIC_LABELS[k] + (f" ({band:g}px)" if k == "boundary_f" else ""), _fmt(k, s[k]),
             "higher is better" if k in HIGHER_IS_BETTER else ("" if k == "static_fraction" else "lower is better"))
            for k in order if k in s]
    width = max(len(r[0]) for r in rows)
    lines.append("")
    lines += [f"  {label:<{width}}  {value:>10}  {hint}".rstrip() for label, value, hint in rows]
    key = "iou" if report.kind != "video" else "flicker"
    scored = [it for it in report.items if it.get(key) is not None]
    if scored and show_worst and report.kind != "video":
        worst = sorted(scored, key=lambda it: it[key])[:show_worst]
        lines += ["", "  worst by IoU: " + ", ".join(f"{it['name']} {it['iou']:.3f}" for it in worst)]
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.worst:
        lines.append(f"  wrote {len(report.worst)} picture(s) to {Path(report.worst[0]).parent}")
    return "\n".join(lines)
