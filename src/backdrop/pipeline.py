"""The Pipeline: segmenter -> matte stages -> compositor, with per-stream state.

A frame flows one way. ``Pipeline.matte(frame)`` returns the matte of a frame (float32 HxW in
[0, 1]); ``Pipeline(frame)`` returns the composite (RGB uint8 HxWx3, or RGBA for a transparent
background, or the 8-bit matte for ``background="matte"``). Everything that lives across frames
is in ``self.state`` (a :class:`StreamState`), so two pipelines never share it; the web server
builds one per peer. ``Pipeline.stream`` is the file-mode loop, which may hold one frame back
for the look-ahead flicker filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import cv2
import numpy as np

from .compose.background import Background, parse_background
from .compose.composite import blend, to_matte_image, to_rgba
from .compose.presenter import composite_presenter
from .compose.effects import light_wrap, match_brightness
from .compose.foreground import decontaminate
from .errors import InputError, OptionError
from .models import DEFAULT_MODEL, Segmenter, load_model
from .stages.cleanup import KEEP_MODES, CleanupOptions, cleanup
from .stages.refine import RefineOptions, bilinear_upsample, fast_guided_upsample, solve_unknown_band
from .stages.roi import RoiOptions, RoiTracker
from .stages.still import StillDetector, StillOptions
from .stages.temporal import MotionFusion, TemporalOptions, one_frame_delay
from .resize import downscale
from .timing import StageTimer

T = TypeVar("T")


REFINE_MODES = ("bilinear", "guided", "high")


@dataclass
class PipelineOptions:
    """Every switch of the pipeline; the CLI maps its flags 1:1 onto these fields.

    Defaults are the measured best (docs/quality.md); :meth:`raw` turns every stage off.
    """

    model: str = DEFAULT_MODEL
    threads: int | None = None
    quiet: bool = False
    roi: bool = True  # crop to the person (stages/roi.py)
    redetect_every: int = 30
    cleanup: bool = True  # connected components (stages/cleanup.py)
    keep: str = "all"  # all | main | faces
    refine: str = "guided"  # bilinear | guided | high (stages/refine.py)
    work_size: int = 512  # long side of the working resolution of the matte stages
    temporal: float = 0.93  # motion-guided fusion strength, 0 = off (stages/temporal.py)
    delay: bool = True  # one-frame-delay flicker filter, files only (never live)
    skip_still: bool = True  # reuse the matte while the person is still (stages/still.py)
    max_skip: int = 4
    decontaminate: bool = True  # foreground colour estimation in the edge band (compose/)
    light_wrap: float = 0.0  # 0..1, new background light around the edge
    colour_match: float = 0.0  # 0..1, move the person's brightness toward the background's

    @classmethod
    def raw(cls, **overrides: Any) -> "PipelineOptions":
        """The bare network: every matte stage off, bilinear upsampling. The baseline that
        ``backdrop eval``/``bench`` compare the default pipeline against (CLI: ``--raw``)."""
        base = dict(roi=False, cleanup=False, refine="bilinear", temporal=0.0, delay=False,
                    skip_still=False, decontaminate=False, light_wrap=0.0, colour_match=0.0)
        return cls(**{**base, **overrides})

    @property
    def is_raw(self) -> bool:
        return (not self.roi and not self.cleanup and self.refine == "bilinear" and self.temporal <= 0
                and not self.skip_still)

    def validate(self) -> "PipelineOptions":
        if self.threads is not None and not 1 <= int(self.threads) <= 256:
            raise OptionError(f"--threads must be between 1 and 256, got {self.threads}")
        if self.refine not in REFINE_MODES:
            raise OptionError(f"--refine must be one of {', '.join(REFINE_MODES)}, not {self.refine!r}")
        if self.keep not in KEEP_MODES:
            raise OptionError(f"--keep must be one of {', '.join(KEEP_MODES)}, not {self.keep!r}")
        if not 0 <= self.temporal < 1:
            raise OptionError(f"--temporal must be in [0, 1), got {self.temporal}")
        for name in ("light_wrap", "colour_match"):
            if not 0 <= getattr(self, name) <= 1:
                raise OptionError(f"--{name.replace('_', '-')} must be in [0, 1], got {getattr(self, name)}")
        if not 64 <= self.work_size <= 4096:
            raise OptionError(f"--work-size must be between 64 and 4096, got {self.work_size}")
        if self.redetect_every < 1 or self.max_skip < 0:
            raise OptionError("--redetect-every must be >= 1 and --max-skip >= 0")
        return self


@dataclass
class StreamState:
    """Everything one stream carries from frame to frame."""

    index: int = -1
    inferences: int = 0
    roi: RoiTracker | None = None
    fusion: MotionFusion | None = None
    still: StillDetector | None = None
    last_canvas: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MatteParts:
    """Working-resolution results of a frame, before refinement to full resolution."""

    small: np.ndarray  # the frame at working size, RGB uint8
    canvas: np.ndarray  # the matte at working size, float32
    skipped: bool = False
    weight: np.ndarray | None = None  # temporal fusion's weight of the past for this frame


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Frames are RGB uint8 HxWx3; say so clearly when they are not."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError(f"frames must be RGB uint8 HxWx3 arrays, got {desc}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError("frame has no pixels")
    return frame


class Pipeline:
    """Segment, refine and composite frames of one stream.

    >>> p = Pipeline(background="#00b140")   # doctest: +SKIP
    >>> out = p(frame)                        # RGB uint8 in, RGB uint8 out
    """

    def __init__(self, background: Any = None, model: str | None = None, *,
                 options: PipelineOptions | None = None, segmenter: Segmenter | None = None,
                 live: bool = False, **overrides: Any):
        opts = options or PipelineOptions()
        if model is not None:
            overrides["model"] = str(model)
        unknown = set(overrides) - {f.name for f in fields(PipelineOptions)}
        if unknown:
            raise OptionError(f"unknown pipeline option(s): {', '.join(sorted(unknown))}")
        self.options = replace(opts, **overrides).validate()
        self.live = live
        self.segmenter = segmenter or load_model(self.options.model, threads=self.options.threads,
                                                 quiet=self.options.quiet)
        self.background: Background = parse_background(background)
        self.state = self._new_state()
        self.timer = StageTimer()

    # -- mattes -------------------------------------------------------------------------------
    def _new_state(self) -> StreamState:
        o = self.options
        st = StreamState()
        if o.roi:
            st.roi = RoiTracker(self.segmenter.spec.aspect, RoiOptions(redetect_every=o.redetect_every))
        if o.temporal > 0:
            st.fusion = MotionFusion(TemporalOptions(strength=o.temporal))
        if o.skip_still:
            st.still = StillDetector(StillOptions(max_skip=o.max_skip))
        return st

    def _infer(self, crop: np.ndarray) -> np.ndarray:
        spec = self.segmenter.spec
        with self.timer("preprocess"):
            x = spec.preprocess(crop)
        with self.timer("inference"):
            y = self.segmenter.run(x)
            self.state.inferences += 1
        with self.timer("postprocess"):
            return spec.postprocess(y)

    def _segment(self, frame: np.ndarray, box, canvas_shape) -> np.ndarray:
        """Run the network on ``box`` (None = whole frame); paste into a working-size canvas."""
        h, w = frame.shape[:2]
        ch, cw = canvas_shape
        if box is None:
            low = self._infer(frame)
            return cv2.resize(low, (cw, ch), interpolation=cv2.INTER_LINEAR)
        x0, y0, x1, y1 = box
        low = self._infer(frame[y0:y1, x0:x1])
        sx, sy = cw / w, ch / h
        cx0, cy0 = int(round(x0 * sx)), int(round(y0 * sy))
        cx1, cy1 = max(cx0 + 1, int(round(x1 * sx))), max(cy0 + 1, int(round(y1 * sy)))
        canvas = np.zeros((ch, cw), np.float32)
        canvas[cy0:cy1, cx0:cx1] = cv2.resize(low, (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_LINEAR)
        return canvas

    def matte_parts(self, frame: np.ndarray) -> MatteParts:
        """Stateful part of the matte: ROI, network, cleanup, skip, fusion at working size."""
        check_frame(frame)
        o, st = self.options, self.state
        st.index += 1
        h, w = frame.shape[:2]
        s = min(1.0, o.work_size / max(h, w))
        cw, ch = max(1, round(w * s)), max(1, round(h * s))
        with self.timer("downscale"):
            small = frame if s == 1.0 else downscale(frame, cw, ch)
            grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
        if st.still is not None and st.last_canvas is not None:
            with self.timer("still"):
                skip = st.still.should_skip(grey)
            if skip:
                canvas = st.last_canvas
                weight = None
                if st.fusion is not None:
                    with self.timer("temporal"):
                        canvas = st.fusion(grey, canvas)
                        weight = st.fusion.weight
                return MatteParts(small, canvas, skipped=True, weight=weight)
        box = st.roi.next_box(w, h) if st.roi is not None else None
        canvas = self._segment(frame, box, (ch, cw))
        if st.roi is not None and box is None:
            # full-frame detection: when the person is small, look again on the crop at once
            with self.timer("roi"):
                st.roi.update(canvas, w, h, None)
                box = st.roi.box
            if box is not None:
                canvas = self._segment(frame, box, (ch, cw))
        if o.cleanup:
            with self.timer("cleanup"):
                canvas = cleanup(canvas, CleanupOptions(keep=o.keep),
                                 guide_gray=grey.astype(np.uint8) if o.keep == "faces" else None)
        if st.roi is not None:
            with self.timer("roi"):
                confident = bool(np.abs(canvas[canvas > 0.02] * 2 - 1).mean() > 0.5) if (canvas > 0.02).any() else False
                st.roi.update(canvas, w, h, box, confident)
        if st.still is not None:
            st.still.observe(grey, canvas)
        st.last_canvas = canvas
        weight = None
        if st.fusion is not None:
            with self.timer("temporal"):
                canvas = st.fusion(grey, canvas)
                weight = st.fusion.weight
        return MatteParts(small, canvas, weight=weight)

    def finish_matte(self, frame: np.ndarray, parts: MatteParts) -> np.ndarray:
        """Refine a working-size matte to the full frame, then steady it where nothing moved."""
        h, w = frame.shape[:2]
        with self.timer("refine"):
            if self.options.refine == "bilinear":
                m = bilinear_upsample(parts.canvas, w, h)
            else:
                m = fast_guided_upsample(frame, parts.small, parts.canvas, RefineOptions())
                if self.options.refine == "high":
                    m = solve_unknown_band(frame, m)
        if self.state.fusion is not None and self.options.refine != "bilinear":
            with self.timer("temporal"):
                m = self.state.fusion.steady_full(m, parts.weight)
        return m

    def matte(self, frame: np.ndarray) -> np.ndarray:
        """Matte of one frame: float32 HxW in [0, 1] at the frame's size (state advances).

        No look-ahead: this is what live mode uses. Files go through :meth:`stream`.
        """
        if self.options.is_raw:
            check_frame(frame)
            self.state.index += 1
            low = self._infer(frame)
            h, w = frame.shape[:2]
            with self.timer("refine"):
                return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        return self.finish_matte(frame, self.matte_parts(frame))

    # -- compositing --------------------------------------------------------------------------
    @property
    def output_kind(self) -> str:
        """``rgb``, ``rgba`` or ``gray``: what :meth:`composite` returns."""
        return {"composite": "rgb", "presenter": "rgb", "transparent": "rgba", "matte": "gray"}[self.background.mode]

    def composite(self, frame: np.ndarray, matte: np.ndarray, index: int | None = None,
                  parts: MatteParts | None = None) -> np.ndarray:
        """Composite one frame with its matte over the background (see :attr:`output_kind`)."""
        index = self.state.index if index is None else index
        o = self.options
        mode = self.background.mode
        if mode == "matte":
            with self.timer("composite"):
                return to_matte_image(matte)
        fg = frame
        small = small_a = None
        if o.decontaminate or self.background.needs_frame:
            with self.timer("downscale"):
                if parts is None:
                    h, w = frame.shape[:2]
                    s = min(1.0, o.work_size / max(h, w))
                    size = (max(1, round(w * s)), max(1, round(h * s)))
                    small = downscale(frame, *size) if s < 1 else frame
                    small_a = downscale(matte, small.shape[1], small.shape[0])
                else:  # the working-size matte is already there: no full-size pass
                    small, small_a = parts.small, parts.canvas
        if o.decontaminate:
            with self.timer("decontaminate"):
                fg = decontaminate(frame, small, small_a, matte)
        with self.timer("composite"):
            if mode == "transparent":
                return to_rgba(fg, matte)
            bg = self.background.render(index, frame, matte,
                                        small=(small, small_a) if small is not None else None)
            if o.colour_match > 0:
                fg = match_brightness(fg, matte, bg, o.colour_match)
            if mode == "presenter":
                return composite_presenter(self.background, bg, fg, matte)
            out = blend(fg, bg, matte)
            if o.light_wrap > 0:
                out = light_wrap(out, bg, matte, o.light_wrap)
            return out

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Composite of one frame (live: no look-ahead)."""
        if self.options.is_raw or self.background.mode == "matte":
            return self.composite(frame, self.matte(frame))
        parts = self.matte_parts(frame)
        return self.composite(frame, self.finish_matte(frame, parts), parts=parts)

    def stream(self, items: Iterable[T], image_of: Callable[[T], np.ndarray] = lambda x: x
               ) -> Iterator[tuple[T, np.ndarray, np.ndarray]]:
        """File-mode loop: yields ``(item, matte, output)`` for each item, in order.

        With ``delay`` (and not live) each frame is held back one frame so the one-frame-delay
        flicker filter can see its successor; the last frame is flushed at the end.
        """
        use_delay = self.options.delay and not self.live and not self.options.is_raw
        if not use_delay:
            for i, item in enumerate(items):
                frame = image_of(item)
                matte = self.matte(frame)
                yield item, matte, self.composite(frame, matte, i)
            return
        held: list[tuple[int, T, np.ndarray, MatteParts]] = []
        prev_canvas: np.ndarray | None = None
        for i, item in enumerate(items):
            frame = image_of(item)
            parts = self.matte_parts(frame)
            held.append((i, item, frame, parts))
            if len(held) == 2:
                j, it, fr, pt = held.pop(0)
                if prev_canvas is not None and pt.canvas.shape == parts.canvas.shape == prev_canvas.shape:
                    with self.timer("temporal"):
                        fixed = one_frame_delay(prev_canvas, pt.canvas, parts.canvas)
                    prev_canvas = pt.canvas
                    pt = MatteParts(pt.small, fixed, pt.skipped, pt.weight)
                else:
                    prev_canvas = pt.canvas
                matte = self.finish_matte(fr, pt)
                yield it, matte, self.composite(fr, matte, j, parts=pt)
        for j, it, fr, pt in held:
            matte = self.finish_matte(fr, pt)
            yield it, matte, self.composite(fr, matte, j, parts=pt)

    def reset(self) -> None:
        """Start a new stream: forget all per-stream state."""
        self.state = self._new_state()
        self.segmenter.reset()

    def close(self) -> None:
        self.background.close()

    def stats(self) -> dict[str, Any]:
        n = self.state.index + 1
        return {"frames": n, "inferences": self.state.inferences,
                "skipped_fraction": (1 - self.state.inferences / n) if n else 0.0}
