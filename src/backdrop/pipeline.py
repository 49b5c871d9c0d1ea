"""``backdrop.pipeline``: the public names of the engine (``backdrop.engine``), kept importable."""

from __future__ import annotations

from .engine import FrameState, Pipeline, PipelineOptions, check_frame

__all__ = ["FrameState", "Pipeline", "PipelineOptions", "check_frame"]
