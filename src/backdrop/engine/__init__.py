"""The engine: runs the declared ``stages.STAGES`` over one per-frame state (see pipeline.py)."""

from __future__ import annotations

from .options import ENGINE_OPTIONS, LIVE_OPTIONS, OPTIONS, PipelineOptions, timer_order
from .pipeline import Pipeline, check_frame
from .state import FrameState

__all__ = ["ENGINE_OPTIONS", "LIVE_OPTIONS", "OPTIONS", "FrameState", "Pipeline", "PipelineOptions", "check_frame",
           "timer_order"]
