"""Second-order (double) exponential smoothing, Holt's linear method.

A crop box smoothed with a plain exponential filter lags behind a person who moves steadily
(the lag grows with the smoothing). Holt's method tracks a level and a trend, so a steady
motion is followed without lag while jitter is still averaged out; its one-step forecast
``level + trend`` is where the box should be on the next frame.

    level_t = a * x_t + (1 - a) * (level_{t-1} + trend_{t-1})
    trend_t = b * (level_t - level_{t-1}) + (1 - b) * trend_{t-1}
"""

from __future__ import annotations

import numpy as np


class DoubleExponential:
    def __init__(self, alpha: float = 0.5, beta: float = 0.3):
        if not (0 < alpha <= 1 and 0 <= beta <= 1):
            raise ValueError("alpha must be in (0, 1] and beta in [0, 1]")
        self.alpha, self.beta = alpha, beta
        self.level: np.ndarray | None = None
        self.trend: np.ndarray | None = None

    def reset(self, x=None) -> None:
        self.level = None if x is None else np.asarray(x, np.float64).copy()
        self.trend = None if x is None else np.zeros_like(self.level)

    def update(self, x) -> np.ndarray:
        """Feed an observation; return the smoothed value (the level)."""
        x = np.asarray(x, np.float64)
        if self.level is None:
            self.reset(x)
            return self.level.copy()
        prev = self.level
        self.level = self.alpha * x + (1 - self.alpha) * (prev + self.trend)
        self.trend = self.beta * (self.level - prev) + (1 - self.beta) * self.trend
        return self.level.copy()

    def forecast(self, steps: int = 1) -> np.ndarray:
        """Where the value is expected ``steps`` frames ahead."""
        if self.level is None:
            raise ValueError("no observation yet")
        return self.level + steps * self.trend
