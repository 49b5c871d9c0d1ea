"""The Pipeline: segmenter -> the declared STAGES -> the background's compositor, per stream.

A frame flows one way. ``Pipeline.matte(frame)`` returns the matte of a frame (float32 HxW in
[0, 1]); ``Pipeline(frame)`` returns the composite (RGB uint8 HxWx3, or RGBA for a transparent
background, or the 8-bit matte for ``background="matte"``: see :attr:`pixel_format`). The engine
knows no stage by name: it runs the hooks of the stages that are on (``stages.STAGES``, in
order) over one :class:`FrameState` per frame. Everything that lives across frames is inside the
stage objects of this pipeline, so two pipelines never share it (the web server builds one per
peer). ``Pipeline.stream`` is the file-mode loop, which holds one frame back when a stage needs
the next one (the one-frame delay).

When no stage is on (``PipelineOptions.raw()``) there is nothing to do at working size: the
network's output goes straight to the frame's size, the bare network that ``docs/quality.md``
compares against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import numpy as np

from ..compose.backgrounds import Background, parse_background
from ..errors import InputError
from ..models import Segmenter, load_model
from ..planar import Planar
from ..stages import STAGES
from ..stages.base import HOOKS, StageContext, implements
from ..stages.refine import bilinear_upsample
from ..timing import StageTimer
from .contract import check_contract
from .fused import FusedPass, fusable
from .network import Network
from .options import OPTIONS, PipelineOptions, check_overrides
from .state import FrameState

T = TypeVar("T")


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Frames are RGB uint8 HxWx3 (or a file job's decoded :class:`Planar`); say so clearly
    when they are not."""
    if isinstance(frame, Planar):
        return frame
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError(f"frames must be RGB uint8 HxWx3 arrays, got {desc}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError("frame has no pixels")
    return frame


class Pipeline:
    """Segment, refine and composite frames of one stream.

    ``background`` is any ``--background`` value (or a BackgroundSpec, an RGB tuple, an RGB
    uint8 array, a Background); options come as ``options=PipelineOptions(...)`` (used as it is)
    and/or keywords (``Pipeline(background="#00b140", roi=False, temporal=0.5)``), which start from
    the defaults the model prefers (``PipelineOptions.for_model``: RVM has no ROI crop).

    >>> p = Pipeline(background="#00b140")   # doctest: +SKIP
    >>> out = p(frame)                        # RGB uint8 in, RGB uint8 out
    """

    def __init__(self, background: Any = None, model: str | None = None, *,
                 options: PipelineOptions | None = None, segmenter: Segmenter | None = None,
                 live: bool = False, **overrides: Any):
        if model is not None:
            overrides["model"] = str(model)
        check_overrides(overrides)
        first = replace(options or PipelineOptions(), **overrides).validate()  # errors before any model load
        if segmenter is None:
            segmenter = load_model(first.model, threads=first.threads, quiet=first.quiet)
        if options is None:  # keywords: start from what the loaded model prefers (its spec's stage defaults)
            preferred = {k: v for k, v in getattr(segmenter.spec, "stage_defaults", {}).items() if k in OPTIONS}
            first = replace(PipelineOptions(**preferred), **overrides).validate()
        self.options = first
        self.live = live
        self.timer = StageTimer()
        self.network = Network(segmenter, self.timer, matting_size=self.options.matting_size)
        self.background: Background = parse_background(background)
        self.index = -1
        self._people: list = []
        self.fused = FusedPass()
        self._make_stages()

    # -- the stages that are on ---------------------------------------------------------------
    def _make_stages(self, keep: dict[str, Any] | None = None) -> None:
        """One object per stage that is on; ``keep`` maps names to objects that stay as they are."""
        ctx = StageContext(aspect=self.network.aspect, live=self.live)
        stages = []
        for spec in STAGES:
            if spec.is_on(self.options, live=self.live):
                stage = (keep or {}).get(spec.name) or spec.make(self.options, ctx)
                stage.spec = spec
                stages.append(stage)
        check_contract(s.spec for s in stages)  # before the first frame: a read nothing writes is one line
        self.stages = stages
        self._hooks = {hook: [s for s in stages if implements(s, hook)] for hook in HOOKS}
        self._works = any(s.spec.phase != "compose" for s in stages)  # else: the raw path
        self._upsampled = any(s.spec.upsamples for s in stages)
        # every stage that is on can join the fused pass, or says per frame when it is idle there
        self.fuses = all(s.spec.fuses(s) or implements(s, "idle") for s in stages)

    def update_options(self, **changes: Any) -> PipelineOptions:
        """Change options between two frames (live); stages whose options changed (or were set
        again to a value that acts, like a plate's "learn") start afresh, the others keep their
        state."""
        check_overrides(changes)
        old, new = self.options, replace(self.options, **changes).validate()
        keep = {}
        for stage in self.stages:
            opts = stage.spec.options
            if all(getattr(old, o.name) == getattr(new, o.name) and not (
                    o.name in changes and getattr(new, o.name) in o.repeatable) for o in opts):
                keep[stage.spec.name] = stage
        self.options = new
        self._make_stages(keep)
        return new

    @property
    def segmenter(self) -> Segmenter:
        return self.network.segmenter

    @segmenter.setter
    def segmenter(self, segmenter: Segmenter) -> None:
        self.network.segmenter = segmenter

    @property
    def pixel_format(self) -> str:
        """``rgb``, ``rgba`` or ``gray``: what :meth:`__call__` returns (the background says)."""
        return self.background.pixel_format

    # -- the stages' hooks, for the engine's own passes (``engine/fused.py``) ---------------------
    def stages_with(self, hook: str) -> list:
        """The stages that are on and implement ``hook`` (one of ``stages.base.HOOKS``), in order."""
        return self._hooks[hook]

    def stages_in(self, phase: str) -> list:
        """The stages that are on in ``phase``, in order."""
        return [s for s in self.stages if s.spec.phase == phase]

    def run_hook(self, stage, hook: str, *args: Any) -> Any:
        """Call ``stage``'s ``hook`` with ``args``, timed under the stage's name."""
        with self.timer(stage.spec.name):
            return getattr(stage, hook)(*args)

    # -- one frame ----------------------------------------------------------------------------
    def _work(self, frame: np.ndarray) -> FrameState:
        """Network and work phases of a new frame: its working-size matte (or, on the raw path,
        the network's matte at full size)."""
        check_frame(frame)
        self.index += 1
        fs = FrameState(self.index, frame, self.timer, self.options.work_size)
        if not self._works:
            fs.matte = self.network.full_frame(fs)
            return fs
        fs.prepare_working()
        hooks = self._hooks
        for stage in hooks["before"]:
            self.run_hook(stage, "before", fs)
            if fs.skipped:
                break
        if fs.skipped:
            self.network.reuse_last_pass(fs)
        else:
            if hooks["segment"]:  # a stage that runs the network itself (ROI) times its own parts
                hooks["segment"][0].segment(fs, self.network)
            else:
                fs.work_matte = self.network.segment(fs)
            for stage in hooks["after"]:
                self.run_hook(stage, "after", fs)
            for stage in hooks["learn"]:
                self.run_hook(stage, "learn", fs)
        for stage in hooks["work"]:
            if stage.spec.on_skipped or not fs.skipped:
                self.run_hook(stage, "work", fs)
        self._people = fs.people
        return fs

    def _full(self, fs: FrameState) -> np.ndarray:
        """The full phase: the matte at the frame's size."""
        if fs.matte is None:
            if not self._upsampled:
                with self.timer("refine"):
                    fs.matte = self._upsample(fs)
            for stage in self._hooks["full"]:
                self.run_hook(stage, "full", fs)
        return fs.matte

    def _upsample(self, fs: FrameState) -> np.ndarray:
        """The working-size matte at full size: bilinear, or for a matting model its own full-size
        alpha plus what the stages changed at working size (none: the alpha as it came)."""
        model = fs.model_alpha
        fs.matte_source = "bilinear" if model is None else "model"
        if model is None:
            return bilinear_upsample(fs.work_matte, *fs.size)
        change = fs.work_matte - fs.model_alpha_small
        if not change.any():
            return model
        return np.clip(model + bilinear_upsample(change, *fs.size), 0.0, 1.0)

    def _output(self, fs: FrameState, matte: bool = True) -> tuple[np.ndarray | None, Callable[[], Any]]:
        """(matte, make) of a frame whose work phase ran: ``make()`` returns its composite and
        runs the full-size work that is left. With ``matte`` the full phase runs now and the matte
        comes back; without (the caller needs only the composite) the fused pass makes it where
        it can (``engine/fused.py``), the full-size matte is never made and ``None`` comes back for
        it. ``make`` is called once, frames in order, from one thread: a file job calls it on
        another thread while this one works on the next frames (the full phase's state is
        touched only there)."""
        if matte:
            full = self._full(fs)
            return full, lambda: self._compose(fs)
        if fusable(self, fs):
            self.fused.prepare(self, fs)
            return None, lambda: self.fused(self, fs)
        return None, lambda: (self._full(fs), self._compose(fs))[1]

    def _compose(self, fs: FrameState) -> np.ndarray:
        """The compose phase: the background kind composites the person over itself."""
        bg = self.background
        fs.fg = fs.frame
        if bg.uses_foreground:
            for stage in self._hooks["foreground"]:
                self.run_hook(stage, "foreground", fs)
        with self.timer("composite"):
            return bg.composite(fs, self._over, self._finish)

    def _over(self, fs: FrameState, bg: np.ndarray) -> None:
        for stage in self._hooks["over"]:
            stage.over(fs, bg)

    def _finish(self, fs: FrameState, out: np.ndarray, bg: np.ndarray) -> np.ndarray:
        for stage in self._hooks["finish"]:
            out = stage.finish(fs, out, bg)
        return out

    # -- the public calls ---------------------------------------------------------------------
    def matte(self, frame: np.ndarray) -> np.ndarray:
        """Matte of one frame: float32 HxW in [0, 1] at the frame's size (state advances).

        No look-ahead: this is what live mode uses. Files go through :meth:`stream`.
        """
        return self._full(self._work(frame))

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """Composite of one frame (no look-ahead), see :attr:`pixel_format`."""
        return self._output(self._work(frame), matte=False)[1]()

    @property
    def people(self) -> list:
        """The people of the latest frame through the pipeline (``tracking.people.Person``: a
        stable ``id``, ``box`` (x0, y0, x1, y1) and 33 ``landmarks`` (x, y, z, visibility,
        presence) in frame pixels, ``presence``, ``main``): for presenter placement and
        auto-framing. Empty when nobody is tracked or the person tracker is off (``roi=False``)."""
        return self._people

    def composite(self, frame: np.ndarray, matte: np.ndarray, index: int | None = None) -> np.ndarray:
        """Composite ``frame`` with a given matte (float32 HxW in [0, 1]) over the background."""
        fs = FrameState(self.index if index is None else index, check_frame(frame), self.timer,
                        self.options.work_size, matte=matte)
        return self._compose(fs)

    def stream(self, items: Iterable[T], image_of: Callable[[T], np.ndarray] = lambda x: x, *,
               mattes: bool = True, defer: bool = False) -> Iterator[tuple[T, np.ndarray | None, Any]]:
        """File-mode loop: yields ``(item, matte, output)`` for each item, in order.

        ``mattes=False``: the caller needs only the outputs; the matte is None and the fused pass
        makes the output where it can (file jobs: ``process_video``, batch, bench). ``defer``
        (with ``mattes=False``): each output is a function to call, in order and from one
        thread, that makes it (always, fused or not: :meth:`_output`); ``process_video`` calls them on its encoder
        thread, so the full-size work overlaps the next frames' network and matte stages.

        When a stage needs the next frame (the one-frame delay; never live) each frame is held
        back one frame so it can see its successor; the last frame is flushed at the end.
        """
        look = self._hooks["look_ahead"]
        later = defer and not mattes

        def output(item: T, fs: FrameState) -> tuple[T, np.ndarray | None, Any]:
            matte, make = self._output(fs, mattes)
            return item, matte, make if later else make()

        held: tuple[T, FrameState] | None = None
        for item in items:
            fs = self._work(image_of(item))
            if not look:
                yield output(item, fs)
                continue
            if held is not None:
                for stage in look:
                    self.run_hook(stage, "look_ahead", held[1], fs)
                yield output(*held)
            held = (item, fs)
        if held is not None:
            yield output(*held)

    def start(self, *, fps: float | None = None, frames: int | None = None) -> None:
        """A file job begins: tell the background its frame rate and length (slide timing)."""
        self.background.start(fps=fps, frames=frames)

    def reset(self) -> None:
        """Start a new stream: forget all per-stream state."""
        self.index = -1
        self.network.inferences = 0
        self._make_stages()
        self.network.reset()

    def close(self) -> None:
        self.background.close()

    def stats(self) -> dict[str, Any]:
        n = self.index + 1
        inferences = self.network.inferences
        return {"frames": n, "inferences": inferences, "skipped_fraction": (1 - inferences / n) if n else 0.0}
