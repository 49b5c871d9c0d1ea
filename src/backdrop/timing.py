"""Per-stage wall-clock timing, kept by the pipeline and read by ``backdrop bench``."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from contextlib import contextmanager

from .stats import summary_ms


MAX_SAMPLES = 10_000


class StageTimer:
    """Keeps the last ``MAX_SAMPLES`` timings per stage (bounded: live streams run for hours)."""

    def __init__(self) -> None:
        self.samples: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=MAX_SAMPLES))

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.samples[stage].append((time.perf_counter() - t0) * 1000.0)

    def add(self, stage: str, ms: float) -> None:
        self.samples[stage].append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """ms/frame per stage: min, median, p95, mean and the number of samples."""
        return {stage: summary_ms(values) for stage, values in self.samples.items()}

    def reset(self) -> None:
        self.samples.clear()
