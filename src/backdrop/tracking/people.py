"""Tracking every person: detect, then follow each one in a crop aligned to their body.

The segmentation models see a few hundred pixels. Squeezing a whole frame into them gives a
standing person a few dozen, and the upper-body selfie model drops legs; a person lying down or
upside down is worse still. So, as MediaPipe's pose graph does (Bazarevsky et al., BlazePose,
2020), the person detector finds each person (hip centre, and a point giving the body's size and
rotation), the landmarker runs on a square crop around them, upright, and from then on each
person's next crop comes from their own landmarks (points 33 and 34, One Euro-smoothed), with no
detector at all while tracking holds. Unlike MediaPipe's graph, which follows one person, this
follows up to ``max_people``, each with a stable id:

- the detector runs first, when a person was lost (presence <= 0.5), after a cut, when the
  caller says (``look``: motion where nobody is) and every ``redetect_every`` frames; a
  detection whose hip centre is within a tenth of a tracked person's crop of its centre is
  that person, any other starts a new track; a close-up (the hips below the frame) is left
  to the selfie network, whose framing it is;
- two tracks that converge on the same person (after an occlusion) are merged, the older id kept;
- a person leaving the frame loses presence and is dropped at once.

The stage (``stages/people.py``) pastes each person's mask and exposes the people per frame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..models.pose import PRESENCE, PoseDetector, PoseLandmarker, PoseResult, Roi
from .one_euro import OneEuro

BODY = 33  # landmarks 0..32 are the body; 33 and 34 the next crop's centre and scale point
AUX_FILTER = (0.01, 10.0)  # MediaPipe 0.10.21's One Euro settings (min_cutoff, beta) for 33/34
BODY_FILTER = (0.05, 80.0)  # ... and for the body landmarks
SAME_PERSON = 0.1  # a detection whose hip is this close to a track's crop centre (x side) is that track
CLOSEUP = (0.95, 1.05)  # a new person is a close-up when their hip is below 0.95 of the frame's height,
# a tracked one becomes one when both hips go below 1.05 of it: between, nothing changes (a
# person seated behind a desk, hips at 1.0-1.14, no longer flips between the two every few frames)
CLOSEUP_SIDE = 2.0  # a detection whose crop is over twice the frame's longer side has no whole body in view:
# a close-up too, at any rotation (a face-filling portrait gave a score-0.72 "person lying down" with a
# 1443-px crop in a 512-px frame, centred off the frame, whose mask took the background: MAD 68 -> 249)
LOOK_EVERY = 15  # motion where nobody is runs the detector at most every this many frames
ROTATED_SCORE = 0.7  # detector score a person turned over 45 degrees needs (real ones: 0.95-0.98, at
# any rotation of DAVIS hike/lucia; a wooden stool read as a person lying down: 0.55)
MIN_MASK = 0.01  # a new person's mask covers at least this share of their crop (a wall is nobody)
PAINT_GROW = 0.25  # a failed detection's face box, grown by this share of its width, is greyed out
MERGE = 0.08  # two tracks whose crops are this close (x side) and of a like size are one person


@dataclass
class Person:
    """A tracked person in one frame (what the API exposes): ``id`` stable while tracked; ``box``
    (x0, y0, x1, y1) around the body's landmarks in frame pixels; ``landmarks`` 33 x 5 (x, y, z,
    visibility, presence; frame pixels, One Euro-smoothed); ``presence`` in [0, 1]; ``main``: the
    person the camera follows (``--keep main``); ``work_matte``: their own mask at working size
    (float32 [0, 1])."""

    id: int
    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    presence: float
    main: bool = False
    work_matte: np.ndarray | None = field(default=None, repr=False, compare=False)  # this person's, working size


@dataclass
class Track:
    """Per-person state across frames."""

    id: int
    roi: Roi  # the crop for the coming frame
    age: int = 0  # frames tracked
    aux: OneEuro = field(default_factory=lambda: OneEuro(*AUX_FILTER))
    body: OneEuro = field(default_factory=lambda: OneEuro(*BODY_FILTER))
    person: Person | None = None
    result: PoseResult | None = None  # this frame's (or the last frame's) landmarker pass
    fresh: PoseResult | None = None  # a pass made while detecting, to use this frame


def _small_mask(result: PoseResult, shape: tuple[int, int], to_small: float) -> np.ndarray:
    """A landmarker pass's person (mask > 0.3) in the detector's copy of the frame (bool)."""
    h, w = shape
    m = np.diag([to_small, to_small, 1.0]) @ np.vstack([result.roi.crop_to_frame(), [0, 0, 1]])
    return cv2.warpAffine(result.mask, m[:2], (w, h), flags=cv2.INTER_LINEAR) > 0.3


def _paint(canvas: np.ndarray, taken: np.ndarray, person: np.ndarray) -> None:
    """Grey out a found person (their mask, grown a little) in the detector's input, and mark
    them ``taken``."""
    h, w = canvas.shape[:2]
    r = max(1, round(0.02 * max(h, w)))
    grown = cv2.dilate(person.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0
    canvas[grown] = 128
    taken |= person


def _paint_box(canvas: np.ndarray, box: np.ndarray, to_small: float, taken: np.ndarray | None = None) -> None:
    """Grey out a detection the tracker does not take (its box: the face's, which is what the
    detector keys on), so that the next run finds someone else; with ``taken`` (a close-up): also
    the body below it, which would otherwise be found again from its shoulders, marked taken (a
    score-0.51 detection on a close-up's shoulder, talking-room frame 584, passed as someone new
    and its mask cut the shoulders off the matte)."""
    x0, y0, x1, y1 = (np.asarray(box) * to_small).tolist()
    g = PAINT_GROW * (x1 - x0)
    h, w = canvas.shape[:2]
    if taken is not None:
        g, y1 = x1 - x0, h
    region = (slice(max(0, int(y0 - g)), min(h, int(np.ceil(y1 + g)))),
              slice(max(0, int(x0 - g)), min(w, int(np.ceil(x1 + g)))))
    canvas[region] = 128
    if taken is not None:
        taken[region] = True


def _box_of(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    xy = landmarks[:BODY, :2]
    return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())


class PersonTracker:
    """Per-stream tracks of every person (see the module docstring)."""

    def __init__(self, detector: PoseDetector, landmarker: PoseLandmarker, *, max_people: int = 6,
                 redetect_every: int = 30, verify: Callable[[np.ndarray, PoseResult], bool] | None = None):
        self.detector, self.landmarker = detector, landmarker
        self.max_people, self.redetect_every = max_people, redetect_every
        self.verify = verify  # a second opinion on a new person: (their crop, the landmarker's pass) -> bool
        self.tracks: list[Track] = []
        self.next_id = 1
        self.since_detect = 0
        self.since_look = LOOK_EVERY
        self.detect_now = True
        self.detections = 0  # detector runs (bench, tests)
        self.closeups = 0
        self.closeup_rois: list[Roi] = []  # close-ups the last detection found (no landmarks: selfie's)
        self.main_id: int | None = None

    def reset(self) -> None:
        """Forget everybody (a cut, a new stream): the next frame runs the detector."""
        self.tracks = []
        self.closeup_rois = []
        self.detect_now = True
        self.main_id = None

    def _detect(self, small: np.ndarray, crop: Callable[[Roi], np.ndarray], size: tuple[int, int]) -> None:
        """New tracks for people not tracked yet, found one at a time.

        BlazePose's detector is made for one person: in a group it finds the most prominent one
        (five people side by side gave one detection, and weighted NMS merged the rest into it).
        So each person found, and each already tracked, is painted out of the detector's input
        and the detector runs again, until it finds nobody new (at most ``max_people`` + 2 runs).
        A new person is checked by the landmarker at once (presence > 0.5), and that first pass
        is kept for this frame."""
        self.since_detect = 0
        self.detect_now = False
        self.closeup_rois = []
        canvas = small.copy()
        to_small = canvas.shape[1] / size[0]
        taken = np.zeros(canvas.shape[:2], bool)
        for track in self.tracks:
            if track.result is not None:
                _paint(canvas, taken, _small_mask(track.result, taken.shape, to_small))
        for _ in range(self.max_people + 2):
            if len(self.tracks) >= self.max_people:
                break
            self.detections += 1
            found = self.detector(canvas, size, limit=1)
            if not found:
                break
            det = found[0]
            hip, scale_point = det.keypoints[0], det.keypoints[1]
            usable = np.isfinite(det.keypoints[:2]).all() and np.hypot(*(scale_point - hip)) >= 2
            if not usable:
                _paint_box(canvas, det.box, to_small)
                continue
            roi = Roi.from_points(hip, scale_point)
            if hip[1] > CLOSEUP[0] * size[1] or roi.side > CLOSEUP_SIDE * max(size):  # the selfie network's framing
                self.closeups += 1
                self.closeup_rois.append(roi)
                _paint_box(canvas, det.box, to_small, taken)
                continue
            if any(np.hypot(hip[0] - t.roi.cx, hip[1] - t.roi.cy) < SAME_PERSON * t.roi.side for t in self.tracks):
                _paint_box(canvas, det.box, to_small)  # already tracked: its own crop is better
                continue
            if abs(roi.rotation) > np.pi / 4 and det.score < ROTATED_SCORE:
                _paint_box(canvas, det.box, to_small)  # lying or upside down needs more evidence
                continue
            pixels = crop(roi)
            result = self.landmarker(pixels, roi)
            person = _small_mask(result, taken.shape, to_small)
            new = person.any() and float(taken[person].mean()) < 0.5  # not mostly someone tracked already
            if (result.presence <= PRESENCE or float(result.mask.mean()) < MIN_MASK or not new
                    or (self.verify is not None and not self.verify(pixels, result))):
                _paint_box(canvas, det.box, to_small)
                continue
            track = Track(self.next_id, roi, fresh=result)
            self.next_id += 1
            self.tracks.append(track)
            _paint(canvas, taken, person)

    def _follow(self, track: Track, result: PoseResult, size: tuple[int, int]) -> None:
        """The person's smoothed landmarks and their next crop."""
        lm = result.landmarks
        centre, point = lm[BODY, :2], lm[BODY + 1, :2]
        scale = 2 * float(np.hypot(*(point - centre)))
        inv = 1.0 / scale if scale > 1e-6 else 1.0
        aux = track.aux(lm[BODY:BODY + 2, :2], inv)
        track.roi = Roi.from_points(aux[0], aux[1])
        body = lm[:BODY].copy()
        body[:, :2] = track.body(lm[:BODY, :2], inv)
        track.age += 1
        track.result = result
        track.person = Person(track.id, _box_of(body), body, result.presence)

    def _merge(self) -> None:
        kept: list[Track] = []
        for t in sorted(self.tracks, key=lambda t: t.id):
            same = any(np.hypot(t.roi.cx - k.roi.cx, t.roi.cy - k.roi.cy) < MERGE * max(t.roi.side, k.roi.side)
                       and 0.6 < t.roi.side / max(k.roi.side, 1e-6) < 1.6 for k in kept)
            if not same:
                kept.append(t)
        self.tracks = kept

    def _choose_main(self) -> None:
        """The person the camera follows: kept while tracked, unless someone else's crop becomes
        twice as large; the largest when there is none."""
        if not self.tracks:
            self.main_id = None
            return
        largest = max(self.tracks, key=lambda t: t.roi.side)
        current = next((t for t in self.tracks if t.id == self.main_id), None)
        if current is None or largest.roi.side > 2 * current.roi.side:
            self.main_id = largest.id
        for t in self.tracks:
            if t.person is not None:
                t.person.main = t.id == self.main_id

    def __call__(self, small: np.ndarray, crop: Callable[[Roi], np.ndarray], size: tuple[int, int], *,
                 look: bool = False) -> list[Track]:
        """One frame: ``small`` is the frame (or a smaller copy) for the detector, ``crop(roi)``
        the landmarker's 256x256 input for a crop, ``size`` the frame's (w, h); ``look``: run the
        detector now (something moved where nobody is). Returns the tracks present in this
        frame, each with its ``result`` and ``person``."""
        self.since_detect += 1
        self.since_look += 1
        if look and self.since_look >= LOOK_EVERY:
            self.since_look = 0
        else:
            look = False
        if look or self.detect_now or self.since_detect >= self.redetect_every:
            self._detect(small, crop, size)
        alive = []
        for track in self.tracks:
            result, track.fresh = track.fresh or self.landmarker(crop(track.roi), track.roi), None
            if result.presence <= PRESENCE:
                self.detect_now = True  # lost: look again next frame
                continue
            if (result.landmarks[[23, 24], 1] > CLOSEUP[1] * size[1]).all():
                self.closeups += 1
                self.closeup_rois.append(result.roi)
                continue  # the hips left the frame: a close-up now, the selfie network's framing
            self._follow(track, result, size)
            alive.append(track)
        self.tracks = alive
        self._merge()
        self._choose_main()
        return self.tracks

    @property
    def people(self) -> list[Person]:
        return [t.person for t in self.tracks if t.person is not None]
