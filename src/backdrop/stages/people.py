"""People: find and follow every person with the pose models, and segment each in an upright crop.

The selfie network is an upper-body model: on whole frames it gives a standing person a few dozen
of its 256 pixels and drops their legs, and upright is all it knows. Held-out DAVIS person clips
scored IoU .652 with it, .765 with Robust Video Matting. So the matte now starts from the person
tracker (``tracking/people.py``: MediaPipe's BlazePose detector and landmarker, Apache-2.0):
each person is followed in a square crop aligned to their body, and BlazePose's own full-body
mask of that crop (256x256) is warped back into the working-size matte, the union over people.
The selfie network still runs once on the frame (3.9 ms): it is the matte where nobody is
tracked (a head-and-shoulders close-up, whose hips are below the frame, is the selfie network's
own framing and better there; a person a few pixels tall the detector misses; the rest of a
crowd) and a second opinion near the tracked people (:func:`combine`, measured in
docs/quality.md). The detector runs when nobody is tracked yet, when a person is lost, after a
cut, when something moves where nobody is (:func:`new_motion`: someone walking in is picked up
within a frame or two) and at least every ``redetect_every`` frames.

Everything the stage learns about people is on ``fs.people`` (stable ids, boxes, 33 landmarks,
presence, the main person) for ``--keep``, presenter placement and auto-framing. A cut resets the
tracks, so nobody from the last shot stays on screen.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..models.pose import CROP, Roi
from .base import Opt, Stage, StageSpec

SCENE_CUT = 40.0  # mean grey-level change (working size) that is a new shot: the tracks start again
REACH = 0.05  # near a person (x their crop's side) selfie only confirms BlazePose (see combine)
GATE = 0.1  # ... where BlazePose gives the person at least this chance
CLOSEUP_MARGIN = 0.1  # around a close-up's crop box (it moves between detections)
AGREE = 0.1  # the selfie network's mean over a new person's mask needed to take them (_agrees)
MOTION_LEVEL = 12.0  # grey levels of change that are motion, not noise (new_motion)
MOTION_SHARE = (0.03, 0.5)  # share of the pixels away from everybody that moves when someone walks in
MAX_PEOPLE = Opt("max_people", 6, "the most people tracked at once", low=1, high=32, metavar="N")
REDETECT = Opt("redetect_every", 30, "run the person detector at least every N frames (besides motion away from "
               "everybody, a lost person and a cut)",
               low=1, high=100000, video_only=True, metavar="N")


class CropSampler:
    """The landmarker's inputs for one frame: each crop warped from the working-size frame when
    that has enough pixels there, else from the full-size frame's region (converted alone for
    planar frames), shrunk first so the warp never aliases."""

    def __init__(self, fs):
        self.fs = fs
        w, h = fs.size
        self.scale = fs.work_frame.shape[1] / w

    def __call__(self, roi: Roi) -> np.ndarray:
        from ..models.pose import PoseLandmarker

        fs = self.fs
        if roi.side * self.scale >= 0.9 * CROP:
            s = self.scale
            return PoseLandmarker.crop(fs.work_frame, np.array([[s, 0, 0], [0, s, 0]]), roi)
        w, h = fs.size
        x0, y0, x1, y1 = roi.bounds()
        rect = (max(0, int(x0)), max(0, int(y0)), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
        if rect[2] - rect[0] < 2 or rect[3] - rect[1] < 2:
            return np.full((CROP, CROP, 3), 128, np.uint8)  # the crop is off the frame
        region = fs.crop_rgb(rect)
        k = max(1.0, roi.side / CROP)
        if k > 1.5:
            rw, rh = max(1, round(region.shape[1] / k)), max(1, round(region.shape[0] / k))
            sx, sy = rw / region.shape[1], rh / region.shape[0]
            region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
        else:
            sx = sy = 1.0
        to_region = np.array([[sx, 0, -rect[0] * sx], [0, sy, -rect[1] * sy]])
        return PoseLandmarker.crop(region, to_region, roi)


def person_mask(mask: np.ndarray, roi: Roi, size: tuple[int, int], work: tuple[int, int]) -> np.ndarray:
    """One person's crop mask (256x256) warped into the working-size frame ``work`` (w, h)."""
    cw, ch = work
    to_work = np.diag([cw / size[0], ch / size[1], 1.0]) @ np.vstack([roi.crop_to_frame(), [0, 0, 1]])
    return cv2.warpAffine(mask, to_work[:2], (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def within(mask: np.ndarray, r: int) -> np.ndarray:
    """The pixels within ``r`` of ``mask`` (bool): a distance transform, not a dilation by a
    (2r+1)^2 ellipse, which took 21 ms a frame at r = 48 (a 512x480 working size; talking-room
    live: p50 25 ms a frame against 18 before the people stage). The 5x5 chamfer mask, not the
    exact transform: 1.0 against 3.9 ms at 512x480 (3.8 ms of every network frame in a serve
    worker went to ``new_motion``'s call), and a reach of 48 moved by under a pixel (0.3 % of
    the pixels within it, all at its rim; Borgefors, "Distance transformations in digital images",
    1986)."""
    if not mask.any():
        return np.zeros(mask.shape, bool)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) <= r


def combine(people: np.ndarray, selfie: np.ndarray, reach: int) -> np.ndarray:
    """The working-size matte from the people's masks (their union) and the selfie network's.

    Within ``reach`` working pixels of a tracked person the selfie network only confirms: where
    BlazePose gives the person some chance (over ``GATE``) and selfie is sure, the larger of the
    two counts (a backpack or a hat BlazePose leaves out); elsewhere near them BlazePose stands
    (selfie alone there added the grass between walking legs: DAVIS lucia IoU .906 -> .864).
    Farther away selfie counts as it is: people the detector did not take (small pedestrians,
    the rest of a crowd). Measured in docs/quality.md (issue 20)."""
    near = within(people > 0.5, reach)
    confirmed = np.where((people > GATE) & (selfie > 0.5), np.maximum(people, selfie), people)
    return np.where(near, confirmed, np.maximum(people, selfie)).astype(np.float32)


def closeup_box(rois: list[Roi], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Where the selfie network runs for head-and-shoulders people: the box of their crops (which
    reach below the frame), clipped, with a margin; None (the whole frame) when there is none or
    it covers most of the frame. A small close-up in a big frame gets most of the network's
    pixels, as the old mask-box crop gave it."""
    if not rois:
        return None
    w, h = size
    b = np.array([r.bounds() for r in rois])
    x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    m = CLOSEUP_MARGIN * max(x1 - x0, y1 - y0)
    box = (max(0, int(x0 - m)), max(0, int(y0 - m)), min(w, int(np.ceil(x1 + m))), min(h, int(np.ceil(y1 + m))))
    if box[2] - box[0] < 8 or box[3] - box[1] < 8 or (box[2] - box[0]) * (box[3] - box[1]) > 0.7 * w * h:
        return None
    return box


def new_motion(grey: np.ndarray, last_grey: np.ndarray, last_matte: np.ndarray | None) -> float:
    """How much changed away from everybody already seen: the share of the pixels outside the last
    matte (grown by a tenth of the frame's height) whose grey level changed by ``MOTION_LEVEL``."""
    moved = cv2.absdiff(grey, last_grey) > MOTION_LEVEL
    outside = np.ones(grey.shape, bool)
    if last_matte is not None and last_matte.shape == grey.shape:
        outside = ~within(last_matte > 0.5, max(1, grey.shape[0] // 10))
    return float((moved & outside).sum()) / max(1, int(outside.sum()))


def someone_may_enter(share: float) -> bool:
    """A person walking in moves part of the frame; a few pixels (noise, a screen's flicker, a
    hand) or nearly all of it (the camera moving, the light changing) is not that. On the office
    desk clip the 0.2 % share first tried ran the detector on 72 of 90 frames; its changing
    background moves 1-5 % of the pixels away from the person (p50 1.1 %, p90 2.5 %)."""
    return MOTION_SHARE[0] < share < MOTION_SHARE[1]


class PeopleStage(Stage):
    """Track every person and segment each one (see the module docstring)."""

    def __init__(self, options, context):
        super().__init__(options, context)
        from ..models.pose import PoseDetector, PoseLandmarker
        from ..models.registry import fetch
        from ..tracking.people import PersonTracker

        det_path, lm_path = fetch(["pose-detector", "pose-landmarks"], quiet=options.quiet)
        threads = options.threads
        self.tracker = PersonTracker(PoseDetector(det_path, threads), PoseLandmarker(lm_path, threads),
                                     max_people=options.max_people, redetect_every=options.redetect_every,
                                     verify=self._agrees)
        self.last_grey: np.ndarray | None = None
        self.last_matte: np.ndarray | None = None
        self.network = None

    def _agrees(self, crop: np.ndarray, result) -> bool:
        """A new person only where the selfie network, on the same upright crop, also sees one:
        BlazePose took a wooden stool for a person (presence 0.99); selfie gave its mask 0.02,
        real people 0.15 to 0.99 (DAVIS, removebg)."""
        if self.network is None:
            return True
        selfie = self.network.infer(crop)
        if selfie.shape != result.mask.shape:
            selfie = cv2.resize(selfie, result.mask.shape[::-1], interpolation=cv2.INTER_LINEAR)
        inside = result.mask > 0.5
        return bool(inside.any()) and float(selfie[inside].mean()) >= AGREE

    def segment(self, fs, network) -> None:
        grey = fs.work_grey
        look = False
        if self.last_grey is None or self.last_grey.shape != grey.shape:
            self.tracker.reset()
        elif float(cv2.absdiff(self.last_grey, grey).mean()) > SCENE_CUT:
            self.tracker.reset()  # a new shot: nobody from the last one stays
        else:
            look = someone_may_enter(new_motion(grey, self.last_grey, self.last_matte))
        self.last_grey = grey
        self.network = network
        with fs.timer("people"):
            tracks = self.tracker(fs.work_frame, CropSampler(fs), fs.size, look=look)
        selfie = network.segment(fs, closeup_box(self.tracker.closeup_rois, fs.size))
        if not tracks:
            fs.work_matte, fs.people = selfie, []
        else:
            with fs.timer("people"):
                ch, cw = selfie.shape
                masks = [person_mask(t.result.mask, t.result.roi, fs.size, (cw, ch)) for t in tracks]
                for track, mask in zip(tracks, masks):
                    track.person.work_matte = mask
                people = np.maximum.reduce(masks) if len(masks) > 1 else masks[0]
                reach = max(1, round(REACH * max(t.result.roi.side for t in tracks) * cw / fs.size[0]))
                fs.work_matte = combine(people, selfie, reach)
                fs.people = self.tracker.people
        self.last_matte = fs.work_matte

    def work(self, fs) -> None:
        if fs.skipped:  # the network did not run: the people are where they were
            fs.people = self.tracker.people

    def reset(self) -> None:
        self.tracker.reset()
        self.last_grey = self.last_matte = None


def _constants() -> dict:
    """The numbers the page's person tracker (web/static/people.js, gl-people.js) shares with this
    stage, the tracker and the models: declared here once, sent by GET /config."""
    from ..models import pose, ssd
    from ..tracking import people as tracking

    return {"detector_size": pose.POSE_DETECTOR.size, "detector_strides": list(pose.POSE_DETECTOR.strides),
            "detector_score": pose.POSE_DETECTOR.min_score, "nms_iou": ssd.NMS_IOU, "crop": pose.CROP,
            "heatmap": pose.HEATMAP, "presence": pose.PRESENCE, "agree": AGREE, "min_mask": tracking.MIN_MASK,
            "paint_grow": tracking.PAINT_GROW, "closeup_in": tracking.CLOSEUP[0], "closeup_out": tracking.CLOSEUP[1],
            "closeup_side": tracking.CLOSEUP_SIDE,
            "same_person": tracking.SAME_PERSON, "rotated_score": tracking.ROTATED_SCORE, "merge": tracking.MERGE,
            "aux_filter": list(tracking.AUX_FILTER), "body_filter": list(tracking.BODY_FILTER),
            "closeup_margin": CLOSEUP_MARGIN, "reach": REACH, "gate": GATE}


STAGE = StageSpec(
    name="people", phase="network", make=PeopleStage, on_skipped=True, web="people", constants=_constants(),
    reads=("work_frame", "work_grey", "size"), writes=("work_matte", "people"),
    summary="whole bodies, several people, any pose: the pose models find and follow each person, "
            "BlazePose's mask in an upright crop around each, the selfie network as a second opinion",
    options=[
        Opt("roi", True, "track each person with the pose models and segment them in an upright crop "
            "(off: the selfie network on the whole frame)", raw=False, live=True),
        MAX_PEOPLE, REDETECT,
    ],
)
