"""The data contract of a pipeline, checked when it is built (MediaPipe's ``GetContract``).

Each stage declares which :class:`~backdrop.engine.state.FrameState` fields it ``reads``, which it
``writes`` and which it uses when they are there (``optional``). The engine writes some fields
itself, each by the start of a phase (:data:`ENGINE_WRITES`). Before the first frame, every field
a stage that is on reads must be written by the engine by that stage's phase, or by a stage that
is on and comes earlier in ``STAGES``; otherwise building the pipeline fails with one line that
names the reader and the field (and who would have written it, had it been on or earlier). A
declaration naming something that is not a field fails the same way. The order of stages is
therefore visible and checked in one place, not learnt from a ``None`` three files away.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import BackdropError
from ..stages.base import PHASES, StageSpec
from .state import FIELDS

ENGINE_WRITES: dict[str, tuple[str, ...]] = {
    # a new frame, its working-size copy, no crop (the whole frame) and no skip unless a stage says
    "network": ("index", "image", "frame", "size", "work_frame", "work_grey", "skipped", "people",
                # the network's pass in this phase (a matting model also gives its own alpha and colours)
                "work_matte", "model_alpha", "model_alpha_small", "model_fg"),
    "work": (),
    # the full-size matte, bilinear or a matting model's own, unless a stage that upsamples makes it
    "full": ("matte", "matte_source"),
    # the person's colours start as the frame's, the colour corrections as none
    "compose": ("fg", "corrections"),
}
"""The fields the engine writes, by the phase from whose start on they are there."""

UPSAMPLED = ("matte", "matte_source")  # what the engine leaves to a stage that upsamples


class ContractError(BackdropError):
    """A stage reads a field that no earlier stage (nor the engine) writes, or names no field."""


def check_contract(specs: Iterable[StageSpec]) -> None:
    """Raise :class:`ContractError` unless every stage in ``specs`` (the stages that are on, in
    order) reads only what the engine or an earlier stage writes."""
    specs = list(specs)
    for spec in specs:
        unknown = [f for f in (*spec.reads, *spec.writes, *spec.optional) if f not in FIELDS]
        if unknown:
            raise ContractError(f"stage {spec.name} declares {', '.join(unknown)}, which is not a FrameState field "
                                f"(fields: {', '.join(FIELDS)})")
    upsampler = any(s.upsamples for s in specs)
    written: dict[str, str] = {}  # field -> who wrote it first
    phase_at = -1
    for spec in specs:
        here = PHASES.index(spec.phase)
        if here < phase_at:
            raise ContractError(f"stage {spec.name} ({spec.phase}) comes after a stage of a later phase in STAGES")
        while phase_at < here:  # the engine's writes up to this stage's phase
            phase_at += 1
            for name in ENGINE_WRITES[PHASES[phase_at]]:
                if not (upsampler and name in UPSAMPLED):
                    written.setdefault(name, "the engine")
        for name in spec.reads:
            if name not in written:
                raise ContractError(_missing(spec, name, specs))
        for name in spec.writes:
            written.setdefault(name, f"stage {spec.name}")


def _missing(reader: StageSpec, name: str, on: list[StageSpec]) -> str:
    """The one line for a read nothing before it writes."""
    from ..stages import STAGES

    writers = [s.name for s in STAGES if name in s.writes and s.name != reader.name]
    if not writers:
        return f"stage {reader.name} reads {name}, which no stage and not the engine writes"
    later = [n for n in writers if n in {s.name for s in on}]
    if later:
        return f"stage {reader.name} reads {name}, which only {', '.join(later)} writes, after it in STAGES"
    return f"stage {reader.name} reads {name}, which only {', '.join(writers)} writes, and that is off"
