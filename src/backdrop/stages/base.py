"""The stage contract: every matte or compose stage declares itself once, here is the shape.

A stage module ends with ``STAGE = StageSpec(...)``: its name (also its timer key in ``backdrop
bench``), its phase, its options (:class:`Opt`: default, range or choices, help, flag, value under
``--raw``, whether it can change live) and a factory for the per-stream object that does the work.
Everything else is derived from the declarations in ``stages.STAGES``: the fields of
``PipelineOptions``, ``PipelineOptions.raw()``, validation, the CLI flags and their help, the live
settings keys, bench's stage order and the batch settings hash. The model for this is MediaPipe's
calculators (declared inputs, outputs and options) chained by a ``.pbtxt`` graph.

Phases, in the order a frame meets them (see :mod:`backdrop.engine.pipeline`):

- ``network``: around the segmentation network at working size. ``before`` hooks run before it
  (a stage may mark the frame skipped, or pick a crop box), ``segment`` lets one stage run the
  network itself (ROI: crop, paste, re-detect), ``after`` hooks correct the network's matte
  (cleanup), ``learn`` hooks update a stage's per-stream model from the settled matte (for the
  next frame). On a skipped frame none of these run after ``before``.
- ``work``: the working-size matte of every frame (skipped ones too where ``on_skipped``), and
  ``look_ahead`` for stages that need the next frame (files only, never live).
- ``full``: at the frame's full size (refinement, steadying).
- ``compose``: the person's colours (``foreground``), adjustments against the new background
  before the blend (``over``) and after it (``finish``).

The data contract (MediaPipe's ``GetContract``: a calculator says what it reads and writes before
it runs): every stage declares ``reads=`` and ``writes=``, by :class:`~backdrop.engine.state.FrameState`
field name, and ``optional=`` for what it uses when someone made it (despill uses the chroma
key's colour when the key ran). Building a pipeline checks that each read is written by the engine
or by an earlier stage that is on (``engine/contract.py``); a stage that reads what nothing writes
fails there with one line naming both. Whether a stage can join the fused full-size pass is read
off the same declaration (see :attr:`StageSpec.fuses`), never a flag to forget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import OptionError

if TYPE_CHECKING:  # pragma: no cover
    from ..engine.state import FrameState

PHASES = ("network", "work", "full", "compose")


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()
"""``Opt.raw`` value meaning: ``--raw`` leaves this option as it is."""


@dataclass(frozen=True)
class Opt:
    """One option of a stage (or of the engine), declared once.

    ``low``/``high`` bound numbers (``high_open`` excludes ``high``), ``choices`` bound strings;
    ``raw`` is its value under ``PipelineOptions.raw()``; ``live`` makes it a live settings key
    (HTTP/JSON, config file, web data channel); ``hashed`` says the output depends on it (the batch
    settings hash); ``video_only`` hides it where only one frame is processed (``backdrop image``).
    """

    name: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    raw: Any = UNCHANGED
    live: bool = False
    hashed: bool = True
    video_only: bool = False
    flag: str | None = None
    metavar: str | None = None
    optional: bool = False  # None is allowed (and means "automatic")
    validator: Callable[[Any], Any] | None = None  # free-form text: returns the value or raises OptionError
    repeatable: tuple[str, ...] = ()  # values that act again when set again (live: plate "learn")
    names_files: bool = False  # free-form values may be file paths (refused from web pages)

    @property
    def value_type(self) -> type:
        """The Python type of the option's values (``int`` for an automatic ``None`` default)."""
        return type(self.default) if self.default is not None else int

    @property
    def cli_flag(self) -> str:
        """``--no-roi`` for an option that is on by default, ``--work-size`` otherwise."""
        if self.flag:
            return self.flag
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.value_type is bool and self.default else f"--{dashed}"

    def describe(self) -> str:
        """The allowed values in words, for errors and help."""
        if self.validator is not None:
            return self.help
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.value_type is bool:
            return "true or false"
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        if self.value_type is int:
            return f"a whole number between {lo} and {hi}"
        return f"a number in [{lo}, {hi}{')' if self.high_open else ']'}"

    def check(self, value: Any) -> Any:
        """``value`` converted to the option's type, or :class:`OptionError` naming the option."""
        if value is None and self.optional:
            return None
        if self.validator is not None:
            return self.validator(value)
        bad = OptionError(f"{{option}} must be {self.describe()}, got {str(value)[:40]!r}", option=self.name)
        kind = self.value_type
        if kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if kind is str:
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise bad
            value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise bad
        if (self.low is not None and value < self.low) or (self.high is not None and (
                value > self.high or (self.high_open and value >= self.high))):
            raise bad
        return value


class Stage:
    """Per-stream object of a stage: the hooks of its phase; state that lives across frames.

    Hooks that a stage does not override are never called. ``self.options`` is the pipeline's
    options object (read the stage's own fields from it).
    """

    spec: "StageSpec"

    def __init__(self, options: Any, context: "StageContext"):
        self.options = options
        self.context = context

    # network phase
    def before(self, fs: "FrameState") -> None: ...
    def segment(self, fs: "FrameState", network: Any) -> None: ...
    def after(self, fs: "FrameState") -> None: ...
    def learn(self, fs: "FrameState") -> None: ...
    # work phase
    def work(self, fs: "FrameState") -> None: ...
    def look_ahead(self, fs: "FrameState", nxt: "FrameState") -> None: ...
    # full phase
    def full(self, fs: "FrameState") -> None: ...
    # compose phase
    def foreground(self, fs: "FrameState") -> None: ...
    def over(self, fs: "FrameState", background: Any) -> None: ...
    def finish(self, fs: "FrameState", out: Any, background: Any) -> Any:
        return out

    def idle(self, fs: "FrameState") -> bool:
        """A compose stage that cannot join the fused pass: True when it will change nothing on
        this frame, which may then take the fused pass all the same (relight on a well-lit person:
        a 720p file job 0.26-0.27 of a bare transcode with every frame unfused, 0.37-0.39 fused).
        Reads the frame's working-size fields and this stage's state only, and writes nothing:
        it runs on the pipeline's thread while earlier frames are composited on another."""
        return False

    def reset(self) -> None:
        """Forget per-stream state (a new stream starts)."""

    # the fused full-resolution pass (engine/fused.py): refine + foreground + blend over the band
    # only. A full-phase stage joins it by overriding ``fuse_region`` (and what it needs of the
    # others); a compose stage joins when it only has a ``foreground`` hook and reads no full-size
    # matte (:attr:`StageSpec.fuses`).
    def fuse_prepare(self, fs: "FrameState") -> None:
        """Working-size work before the full-size regions (guided coefficients). It must touch
        no state of this stage: a file job runs it on the pipeline's thread while earlier frames
        are still being composited on another (``Pipeline.stream(defer=True)``)."""

    def fuse_begin(self, fs: "FrameState") -> None:
        """The stage's own state made ready for this frame (buffers kept across frames); runs
        on the compositing thread, frames in order, just before the regions."""

    def fuse_bounds(self, fs: "FrameState", tiles: Any) -> tuple[Any, Any] | None:
        """Two tile maps: where this stage's matte is surely at most ``fused.SURE`` (background)
        and surely at least ``1 - SURE`` (interior); None: no constraint."""
        return None

    def fuse_region(self, fs: "FrameState", rect: tuple[int, int, int, int], matte: Any) -> Any:
        """The full-size matte over ``rect`` (x0, y0, x1, y1), from the previous stage's crop."""
        return matte

    def fuse_done(self, fs: "FrameState", tiles: Any, classes: Any) -> None:
        """After the regions: the tile classes (``compose.regions.EXT/BAND/INT``) of this frame."""


HOOKS = ("before", "segment", "after", "learn", "work", "look_ahead", "full", "foreground", "over", "finish", "idle")
FUSE_HOOKS = ("fuse_prepare", "fuse_begin", "fuse_bounds", "fuse_region", "fuse_done")


def implements(stage: Stage, hook: str) -> bool:
    """True when ``stage`` overrides ``hook`` (the engine calls only those)."""
    return getattr(type(stage), hook) is not getattr(Stage, hook)


@dataclass(frozen=True)
class StageContext:
    """What a stage may know about its stream when it is made."""

    aspect: float = 1.0  # the model's input width / height (ROI shapes its crop to it)
    live: bool = False


def _first_option_on(spec: "StageSpec") -> Callable[[Any], bool]:
    name = spec.options[0].name
    return lambda o: bool(getattr(o, name))


@dataclass(frozen=True)
class StageSpec:
    """The declaration of a stage. ``enabled`` defaults to "its first option is truthy"."""

    name: str
    phase: str
    summary: str
    make: Callable[[Any, StageContext], Stage]
    options: Sequence[Opt] = ()
    enabled: Callable[[Any], bool] | None = None
    on_skipped: bool = False  # runs on frames whose network pass was skipped (work phase)
    needs_next: bool = False  # needs the next frame: files only, never live
    upsamples: bool = False  # makes the full-size matte (else the engine upsamples bilinearly)
    reads: tuple[str, ...] = ()  # FrameState fields it needs: written by the engine or an earlier stage
    writes: tuple[str, ...] = ()  # FrameState fields it sets
    optional: tuple[str, ...] = ()  # fields it uses when an earlier stage wrote them (else their default)
    web: str | None = None  # the on-device page's pass doing this stage (web/static/); None: server only
    constants: Mapping[str, float] = field(default_factory=dict)  # numbers its page pass shares with it
    module: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"stage {self.name}: phase must be one of {PHASES}")
        if self.enabled is None:
            if not self.options:
                raise ValueError(f"stage {self.name}: declare enabled= or at least one option")
            object.__setattr__(self, "enabled", _first_option_on(self))

    def fuses(self, stage: Stage) -> bool:
        """Whether ``stage`` (this spec's object) can join the fused full-size pass, read off the
        declaration: a full-phase stage that computes its matte over a region (``fuse_region``), a
        compose stage whose only hook is ``foreground`` and that reads no full-size matte (its
        correction is made at working size); stages of the first two phases ran before the pass."""
        if self.phase in ("network", "work"):
            return True
        if self.phase == "full":
            return implements(stage, "fuse_region")
        blends = implements(stage, "over") or implements(stage, "finish")
        return not blends and "matte" not in (*self.reads, *self.optional)

    def is_on(self, options: Any, *, live: bool = False) -> bool:
        """Whether this stage runs under ``options`` (and in live mode, when ``live``)."""
        return bool(self.enabled(options)) and not (live and self.needs_next)
