"""Single-shot detector decoding shared by MediaPipe's pose and face detectors.

Both detectors (BlazePose's person detector and BlazeFace short range, Bazarevsky et al. 2019 and
2020) regress, per anchor, a box and a few keypoints relative to a fixed grid of anchor centres,
and a score logit. What follows is MediaPipe's ``SsdAnchorsCalculator`` (``fixed_anchor_size``,
one aspect ratio plus the interpolated scale: two anchors a cell a layer, layers of equal stride
stacked), ``TensorsToDetectionsCalculator`` (XYWH, no exponent, scores ``sigmoid(clip(logit, 100))``)
and the weighted non-maximum suppression of ``NonMaxSuppressionCalculator`` (the output box and
keypoints are the score-weighted mean of everything overlapping the best box by IoU > 0.3), with
the letterbox padding of the square input removed afterwards. The constants are the ones compiled
into the ``mediapipe==0.10.21`` wheel's graphs (they differ from some GitHub copies).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SCORE_CLIP = 100.0
NMS_IOU = 0.3


@dataclass(frozen=True)
class DetectorSpec:
    """The decoding of one SSD detector (MediaPipe's graph options)."""

    size: int  # square input, pixels
    strides: tuple[int, ...]
    keypoints: int
    min_score: float = 0.5


@dataclass
class Detection:
    """One detection in frame pixels: ``box`` (x0, y0, x1, y1), ``keypoints`` (K x 2), ``score``."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def anchors(size: int, strides: tuple[int, ...]) -> np.ndarray:
    """The anchor centres (N x 2, in [0, 1]) in MediaPipe's order: layer, row, column, anchor."""
    out = []
    layer = 0
    while layer < len(strides):
        last, per_cell = layer, 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 2  # aspect ratio 1 and the interpolated scale
            last += 1
        cells = int(np.ceil(size / strides[layer]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 2)
        out.append(np.repeat(centres, per_cell, axis=0))
        layer = last
    return np.concatenate(out).astype(np.float32)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """``image`` (RGB uint8) scaled into a ``size`` square, aspect kept, as float32 in [-1, 1] with
    the border at -1 (MediaPipe: zero border, then the range); and where the image lies in the
    square (x, y, width, height as fractions of it)."""
    h, w = image.shape[:2]
    s = size / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.full((size, size, 3), -1.0, np.float32)
    x0, y0 = (size - nw) // 2, (size - nh) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small.astype(np.float32) * (2.0 / 255.0) - 1.0
    return out, (x0 / size, y0 / size, nw / size, nh / size)


def decode(raw: np.ndarray, logits: np.ndarray, spec: DetectorSpec, anchor: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(boxes N x 4 as x0, y0, x1, y1 and keypoints N x K x 2, both in [0, 1] of the square input;
    scores N) of the anchors scoring at least ``spec.min_score``."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1).astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
    keep = scores >= spec.min_score
    raw, a, scores = raw.reshape(len(anchor), -1)[keep] / spec.size, anchor[keep], scores[keep]
    centre = raw[:, 0:2] + a
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    kps = raw[:, 4:4 + 2 * spec.keypoints].reshape(-1, spec.keypoints, 2) + a[:, None, :]
    good = (raw[:, 2] >= 0) & (raw[:, 3] >= 0) & np.isfinite(boxes).all(axis=1)
    return boxes[good], kps[good], scores[good]


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one box (x0, y0, x1, y1) with each of ``boxes``."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1]) + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.where(inter > 0, inter / np.maximum(area - inter, 1e-12), 0.0)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, limit: int, weighted: bool = True
                 ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: best first, each output the score-weighted mean of the boxes and
    keypoints overlapping it (IoU > 0.3), at most ``limit`` of them."""
    order = np.argsort(-scores, kind="stable")
    boxes, kps, scores = boxes[order], kps[order], scores[order]
    out = []
    while len(scores) and len(out) < limit:
        near = iou(boxes[0], boxes) > NMS_IOU
        near[0] = True
        if weighted:
            w = scores[near][:, None]
            box = (boxes[near] * w).sum(axis=0) / w.sum()
            kp = (kps[near] * w[:, :, None]).sum(axis=0) / w.sum()
        else:
            box, kp = boxes[0], kps[0]
        out.append((box, kp, float(scores[0])))
        boxes, kps, scores = boxes[~near], kps[~near], scores[~near]
    return out


def to_frame(box: np.ndarray, kps: np.ndarray, placed: tuple[float, float, float, float], w: int, h: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """A box and keypoints from the letterboxed square to frame pixels (MediaPipe's letterbox
    removal, with the padding the rounding of :func:`letterbox` really made)."""
    ox, oy, fw, fh = placed
    scale = np.array([w / fw, h / fh], np.float32)
    off = np.array([ox, oy], np.float32)
    b = ((box.reshape(2, 2) - off) * scale).reshape(4)
    return b, (kps - off) * scale


def detect(run, image: np.ndarray, spec: DetectorSpec, anchor: np.ndarray, limit: int, size: tuple[int, int],
           weighted: bool = True) -> list[Detection]:
    """The detections (best first, at most ``limit``) of ``image`` (RGB uint8, any size: the frame
    or a smaller copy of it) in the pixels of a frame of ``size`` (w, h). ``run(x)`` runs the
    model on the 1 x S x S x 3 input and returns (raw boxes, score logits)."""
    x, placed = letterbox(image, spec.size)
    raw, logits = run(x[None])
    boxes, kps, scores = decode(raw, logits, spec, anchor)
    out = []
    for box, kp, score in weighted_nms(boxes, kps, scores, limit, weighted):
        b, k = to_frame(box, kp, placed, *size)
        out.append(Detection(b, k, score))
    return out
