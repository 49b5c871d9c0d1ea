"""The network's guard around a matte from another source (a chroma key, a clean plate).

A key or a plate difference is precise at the edge but knows nothing of people: a green shirt is
a hole, a chair moved behind the person is foreground. The network knows people but is blurry.
So the other source speaks only inside the network's *reach* (its person, grown), and the
network's sure *core* (its person, eroded) is always person. The full-size work is done only in
the box around the reach, which is what keeps keying and plate differences cheap at 720p.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

CORE = 0.03  # network core: erosion radius as a share of the working frame's long side
REACH = 0.06  # the other source counts this far around the network's person (share of the long side)


def disk(shape, share: float) -> np.ndarray:
    """An elliptic structuring element of radius ``share`` of the long side of ``shape``."""
    r = max(1, round(share * max(shape)))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def person_core(work_matte: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(person, core) uint8 masks at working size from the network's matte."""
    person = (work_matte > 0.5).astype(np.uint8)
    return person, cv2.erode(person, disk(person.shape, CORE))


def full_box(mask: np.ndarray, w: int, h: int) -> tuple[int, int, int, int] | None:
    """The full-size box (x0, y0, x1, y1) around a working-size mask, one working pixel wider."""
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    sx, sy = w / mask.shape[1], h / mask.shape[0]
    return (max(0, int((xs.min() - 1) * sx)), max(0, int((ys.min() - 1) * sy)),
            min(w, int(np.ceil((xs.max() + 2) * sx))), min(h, int(np.ceil((ys.max() + 2) * sy))))


Evidence = Callable[[tuple[int, int, int, int], Callable[[np.ndarray], np.ndarray]],
                    "np.ndarray | tuple[np.ndarray, np.ndarray]"]


def guarded_matte(size: tuple[int, int], reach: np.ndarray, core: np.ndarray, evidence: Evidence) -> np.ndarray:
    """The full-size matte: ``evidence(box, up)`` (float32 alpha of the frame inside ``box``;
    ``up`` brings a working-size array to that box) where ``reach`` allows, ``core`` at least.

    ``evidence`` may also return ``(alpha, empty)``: ``empty`` (bool, the box's size) marks where
    the other source is sure nobody is (the empty scene itself, joined to the background), and
    there the network's core does not count either."""
    w, h = size
    matte = np.zeros((h, w), np.float32)
    box = full_box(reach > 0, w, h)
    if box is None:
        return matte
    x0, y0, x1, y1 = box

    def up(a: np.ndarray) -> np.ndarray:
        return cv2.resize(a.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)[y0:y1, x0:x1]

    alpha = evidence(box, up)
    sure = up(cv2.blur(core.astype(np.float32), (3, 3)))
    if isinstance(alpha, tuple):
        alpha, empty = alpha
        sure[empty] = 0.0
    matte[y0:y1, x0:x1] = np.maximum(alpha * up(cv2.blur(reach.astype(np.float32), (5, 5))), sure)
    return matte
