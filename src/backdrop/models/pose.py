"""The person tracker's models: MediaPipe's BlazePose detector and landmarker, and BlazeFace.

All three are Apache-2.0 files from the ``mediapipe==0.10.21`` wheel (``registry.TRACKER_MODELS``),
run with LiteRT; we never import MediaPipe. Frames are RGB uint8 HxWx3, masks float32 in [0, 1].

- :class:`PoseDetector` (Bazarevsky et al., "BlazePose: On-device Real-time Body Pose tracking",
  2020): each person in a 224x224 letterboxed frame, a box and four keypoints: 0 the hip centre,
  1 a point whose distance from it gives the body's size and whose direction its rotation.
- :class:`PoseLandmarker`: in a 256x256 crop aligned to that rotation, 39 landmarks (33 of the
  body, 33/34 the next crop's centre and scale point), a presence score and a 256x256 person
  mask (logits). The crop is an affine warp of the frame; MediaPipe's projections are the same
  affine map (``crop_to_frame``), so masks and landmarks go back through one matrix.
- :class:`FaceDetector` (BlazeFace short range, 128x128): faces with six keypoints, for
  ``--keep faces`` now that OpenCV 5 ships no Haar cascade.

The decoding constants are the ones compiled into the wheel's graphs (``/tmp`` research notes,
summarised in docs/quality.md): detector score >= 0.5, presence > 0.5, heatmap refinement with a
7x7 window where its peak is >= 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .litert import LiteRTModel
from .ssd import Detection, DetectorSpec, anchors, detect

CROP = 256  # the landmarker's square input
HEATMAP = 64
REFINE_KERNEL = 7
PRESENCE = 0.5  # the pose flag above which the person is there (MediaPipe: min_tracking_confidence)
POSE_DETECTOR = DetectorSpec(size=224, strides=(8, 16, 32, 32, 32), keypoints=4)
FACE_DETECTOR = DetectorSpec(size=128, strides=(8, 16, 16, 16), keypoints=6)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80, 80)))


@dataclass(frozen=True)
class Roi:
    """A square crop of the frame: centre (cx, cy), side and rotation (radians; 0 = upright, the
    body's hip-to-head direction pointing up), all in frame pixels."""

    cx: float
    cy: float
    side: float
    rotation: float

    @classmethod
    def from_points(cls, centre: np.ndarray, scale_point: np.ndarray, scale: float = 1.25) -> "Roi":
        """MediaPipe's AlignmentPointsRects + RectTransformation: centred on ``centre``, side
        ``scale * 2 |scale_point - centre|``, rotated so that ``scale_point`` is straight above."""
        d = np.asarray(scale_point, np.float64) - np.asarray(centre, np.float64)
        rotation = np.pi / 2 - np.arctan2(-d[1], d[0])
        rotation = rotation - 2 * np.pi * np.floor((rotation + np.pi) / (2 * np.pi))
        return cls(float(centre[0]), float(centre[1]), float(scale * 2 * np.hypot(*d)), float(rotation))

    def crop_to_frame(self, size: int = CROP) -> np.ndarray:
        """The 2x3 affine map from crop pixels (0..size) to frame pixels."""
        c, s = np.cos(self.rotation), np.sin(self.rotation)
        k = self.side / size
        a = np.array([[c * k, -s * k], [s * k, c * k]])
        t = np.array([self.cx, self.cy]) - a @ np.array([size / 2, size / 2])
        return np.hstack([a, t[:, None]])

    def corners(self) -> np.ndarray:
        """The crop's four corners in frame pixels (4 x 2)."""
        m = self.crop_to_frame(1)
        unit = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
        return unit @ m[:, :2].T + m[:, 2]

    def bounds(self) -> tuple[float, float, float, float]:
        """The axis-aligned box (x0, y0, x1, y1) around the crop, frame pixels (not clipped)."""
        c = self.corners()
        return float(c[:, 0].min()), float(c[:, 1].min()), float(c[:, 0].max()), float(c[:, 1].max())


@dataclass
class PoseResult:
    """One landmarker pass: ``presence`` in [0, 1]; ``landmarks`` 39 x 5 (x, y in frame pixels,
    z in frame-pixel scale, visibility, presence in [0, 1]); ``mask`` 256x256 person probability
    in the crop; ``roi`` the crop it ran on."""

    presence: float
    landmarks: np.ndarray
    mask: np.ndarray
    roi: Roi


class PoseDetector:
    """Every person in the frame, best first, at most ``limit`` (BlazePose's detector)."""

    def __init__(self, path, threads: int | None = None):
        self.model = LiteRTModel(path, ("Identity", "Identity_1"), threads)
        self.anchors = anchors(POSE_DETECTOR.size, POSE_DETECTOR.strides)

    def __call__(self, image: np.ndarray, size: tuple[int, int], limit: int = 6, weighted: bool = True
                 ) -> list[Detection]:
        """``image``: the frame (RGB uint8) or a smaller copy of it; results in the pixels of a
        frame of ``size`` (w, h). ``weighted``: MediaPipe's weighted NMS (else the best box as is)."""
        return detect(self.model, image, POSE_DETECTOR, self.anchors, limit, size, weighted)


class FaceDetector:
    """Faces (BlazeFace short range): boxes and six keypoints (eyes, nose, mouth, ears)."""

    def __init__(self, path, threads: int | None = None):
        self.model = LiteRTModel(path, ("regressors", "classificators"), threads)
        self.anchors = anchors(FACE_DETECTOR.size, FACE_DETECTOR.strides)

    def __call__(self, image: np.ndarray, size: tuple[int, int], limit: int = 12) -> list[Detection]:
        return detect(self.model, image, FACE_DETECTOR, self.anchors, limit, size)


def refine_with_heatmap(points: np.ndarray, heatmap: np.ndarray) -> np.ndarray:
    """MediaPipe's RefineLandmarksFromHeatmap: each landmark (x, y in [0, 1] of the crop) moved to
    the confidence-weighted mean of its 7x7 heatmap window where the window's peak is >= 0.5."""
    out = points.copy()
    conf = sigmoid(heatmap)
    r = REFINE_KERNEL // 2
    for k in range(min(len(points), conf.shape[2])):
        col, row = int(points[k, 0] * HEATMAP), int(points[k, 1] * HEATMAP)
        if not (0 <= col < HEATMAP and 0 <= row < HEATMAP):
            continue
        r0, r1, c0, c1 = max(0, row - r), min(HEATMAP, row + r + 1), max(0, col - r), min(HEATMAP, col + r + 1)
        window = conf[r0:r1, c0:c1, k]
        total = float(window.sum())
        if window.max() >= 0.5 and total > 0:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            out[k, 0] = float((cols * window).sum()) / HEATMAP / total
            out[k, 1] = float((rows * window).sum()) / HEATMAP / total
    return out


class PoseLandmarker:
    """BlazePose full on one person's crop: landmarks, presence and the person's mask."""

    def __init__(self, path, threads: int | None = None):
        self.model = LiteRTModel(path, ("Identity", "Identity_1", "Identity_2", "Identity_3"), threads)

    @staticmethod
    def crop(source: np.ndarray, to_source: np.ndarray, roi: Roi) -> np.ndarray:
        """The 256x256 upright crop (RGB uint8) of ``roi`` from ``source``, an image whose pixels are
        frame pixels mapped by the 2x3 ``to_source`` (a part of the frame, maybe scaled down)."""
        m = np.vstack([to_source, [0, 0, 1]]) @ np.vstack([roi.crop_to_frame(), [0, 0, 1]])
        return cv2.warpAffine(source, m[:2], (CROP, CROP), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)

    def __call__(self, crop: np.ndarray, roi: Roi) -> PoseResult:
        """The landmarker on ``crop`` (from :meth:`crop`), results in frame pixels."""
        x = crop.astype(np.float32)[None] * (1.0 / 255.0)
        raw, flag, seg, heat = self.model(x)
        lm = raw.reshape(-1, 5).astype(np.float64)
        norm = refine_with_heatmap(lm[:, :2] / CROP, heat[0])
        m = roi.crop_to_frame()
        xy = (norm * CROP) @ m[:, :2].T + m[:, 2]
        out = np.empty((len(lm), 5), np.float64)
        out[:, :2] = xy
        out[:, 2] = lm[:, 2] / CROP * roi.side
        out[:, 3:] = sigmoid(lm[:, 3:])
        return PoseResult(float(flag.reshape(-1)[0]), out, sigmoid(seg[0, :, :, 0]).astype(np.float32), roi)
