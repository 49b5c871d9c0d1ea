"""Pictures of the worst items of an evaluation: image | truth | prediction | error, side by side.

A number says how bad an item is, a picture says why. :class:`WorstKeeper` keeps only the ``n``
worst (downscaled) while the evaluation streams, so memory stays flat on large sets, and writes
them at the end; it knows nothing about which metric ranked them.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from pathlib import Path

import cv2
import numpy as np

from ..errors import OutputError
from ..io.image import write_image

WORST_PANEL_HEIGHT = 480  # the side-by-side pictures are scaled down to this panel height


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

    return labelled_panels([image, grey(truth), grey(pred), error_map(image, truth, pred)], caption, labels)


def labelled_panels(panels: list[np.ndarray], caption: str, labels: tuple[str, ...]) -> np.ndarray:
    """Panels of one size side by side, with a caption line and a label over each."""
    h, w = panels[0].shape[:2]
    gap, head = 4, 40
    canvas = np.full((h + head, len(panels) * (w + gap) - gap, 3), 32, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(canvas, caption[:200], (4, 15), font, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    for i, (panel, label) in enumerate(zip(panels, labels)):
        x = i * (w + gap)
        canvas[head:, x:x + w] = panel
        cv2.putText(canvas, label, (x + 4, 33), font, 0.4, (200, 200, 200), 1, cv2.LINE_AA)
    return canvas
