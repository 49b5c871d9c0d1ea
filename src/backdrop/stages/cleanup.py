"""Cleanup: connected components on the matte.

Segmentation networks leave stray blobs (a coat on a chair, a face in a poster) and pinholes
inside the person. Components are found on the thresholded matte; a component stays when it is
large in absolute terms (``min_area`` of the frame) and relative to the largest one
(``min_relative``), so two people on a call both stay while specks go. ``keep="main"`` keeps
only components touching the largest one's neighbourhood; ``keep="faces"`` keeps only
components that contain a detected face (OpenCV's Haar cascade; falls back to ``all`` when no
face is found at all). Holes smaller than ``max_hole`` of the person are filled. Dropping is
done on the soft matte with a feathered mask, so kept edges stay soft.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .base import Opt, Stage, StageSpec

KEEP_MODES = ("all", "main", "faces")


@dataclass
class CleanupOptions:
    min_area: float = 0.002
    min_relative: float = 0.08
    max_hole: float = 0.02
    keep: str = "all"


_face_cascade = None


def _faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    global _face_cascade
    if _face_cascade is None:
        _face_cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = _face_cascade.detectMultiScale(gray, scaleFactor=1.15, minNeighbors=4, minSize=(12, 12))
    return [tuple(int(v) for v in f) for f in found] if len(found) else []


def cleanup(matte: np.ndarray, options: CleanupOptions | None = None,
            guide_gray: np.ndarray | None = None) -> np.ndarray:
    """Return a cleaned copy of ``matte`` (float32 HxW in [0, 1])."""
    opt = options or CleanupOptions()
    binary = (matte > 0.5).astype(np.uint8)
    # connectedComponents + bincount is ~4x faster than connectedComponentsWithStats here
    n, labels = cv2.connectedComponents(binary, connectivity=8)
    if n <= 1:
        return matte
    areas = np.bincount(labels.ravel(), minlength=n)[1:]
    total = matte.shape[0] * matte.shape[1]
    largest = int(areas.max())
    keep = (areas >= opt.min_area * total) & (areas >= opt.min_relative * largest)
    if opt.keep == "main":
        main = 1 + int(np.argmax(areas))
        near = cv2.dilate((labels == main).astype(np.uint8), np.ones((5, 5), np.uint8))
        touching = set(np.unique(labels[near > 0]).tolist())
        keep &= np.array([(i + 1) in touching for i in range(n - 1)])
    elif opt.keep == "faces" and guide_gray is not None:
        faces = _faces(guide_gray)
        if faces:
            with_face = np.zeros(n - 1, bool)
            for x, y, fw, fh in faces:
                lab = labels[y + fh // 2, x + fw // 2]
                if lab:
                    with_face[lab - 1] = True
            keep &= with_face
    lut = np.zeros(n, np.uint8)
    lut[1:][keep] = 1
    kept = lut[labels]
    out = matte
    if not keep.all():
        # feathered support of the kept components: soft edges of kept people are untouched,
        # everything (soft or not) far from them is removed
        support = cv2.dilate(kept, np.ones((7, 7), np.uint8)).astype(np.float32)
        support = cv2.blur(support, (5, 5))
        out = matte * support
    # fill holes: background components enclosed by the person and small relative to it
    person_area = int(kept.sum())
    if person_area and opt.max_hole > 0:
        inv = (kept == 0).astype(np.uint8)
        hn, hlabels = cv2.connectedComponents(inv, connectivity=4)
        if hn > 2:
            area = np.bincount(hlabels.ravel(), minlength=hn)
            border = np.unique(np.concatenate([hlabels[0], hlabels[-1], hlabels[:, 0], hlabels[:, -1]]))
            fill = (area <= opt.max_hole * person_area).astype(np.uint8)
            fill[0] = 0
            fill[border] = 0
            if fill.any():
                out = np.maximum(out, fill[hlabels].astype(np.float32))
    return out.astype(np.float32, copy=False)


def check_faces_available() -> None:
    """``keep="faces"`` needs OpenCV's Haar cascade, which OpenCV 5 no longer ships: say so at once
    (it used to fail on the first frame with an AttributeError)."""
    if not hasattr(cv2, "CascadeClassifier"):
        from ..errors import OptionError

        raise OptionError(f"{{option}}=faces needs OpenCV's face cascade, which OpenCV {cv2.__version__} no longer "
                          "ships: use all or main, or pip install 'opencv-python-headless<5'", option="keep")


class CleanupStage(Stage):
    """Drop stray blobs, fill holes (see :func:`cleanup`)."""

    def __init__(self, options, context):
        super().__init__(options, context)
        if options.keep == "faces":
            check_faces_available()

    def after(self, fs) -> None:
        keep = self.options.keep
        fs.work_matte = cleanup(fs.work_matte, CleanupOptions(keep=keep),
                            guide_gray=fs.work_grey.astype(np.uint8) if keep == "faces" else None)


STAGE = StageSpec(
    name="cleanup", phase="network", make=CleanupStage,
    reads=("work_matte", "work_grey"), writes=("work_matte",),
    summary="stray blobs dropped (every real person kept), holes filled",
    options=[
        Opt("cleanup", True, "drop stray blobs and fill holes in the matte", raw=False, live=True),
        Opt("keep", "all", "which people cleanup keeps: all, main (touching the largest), faces",
            choices=KEEP_MODES, live=True),
    ],
)
