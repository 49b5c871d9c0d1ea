"""The One Euro filter (Casiez, Roussel, Vogel, CHI 2012), as MediaPipe smooths pose landmarks.

A low-pass filter whose cut-off rises with the signal's speed: still landmarks are held steady
(a low cut-off removes jitter), moving ones follow with little lag (a high cut-off). MediaPipe's
``OneEuroFilter`` (``mediapipe/util/filtering/one_euro_filter.cc``) also scales the derivative by
``1 / object_scale`` so that the same settings hold for a person near the camera and far from it;
the derivative uses the previous raw value. The settings BlazePose's graph uses in the
``mediapipe==0.10.21`` wheel (``pose_landmark_filtering``): body landmarks min_cutoff 0.05, beta
80; the crop's centre and scale points min_cutoff 0.01, beta 10; derivative cut-off 1 Hz. Time
steps are the frames at 30 per second, as MediaPipe's Python solution feeds them.
"""

from __future__ import annotations

import math

import numpy as np

FPS = 30.0


def alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    """The exponential smoothing factor of a cut-off frequency at a sample rate."""
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau * rate)


class OneEuro:
    """One Euro filter over an array of values (any shape), all filtered independently."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float = 1.0, rate: float = FPS):
        self.min_cutoff, self.beta, self.d_cutoff, self.rate = min_cutoff, beta, d_cutoff, rate
        self.reset()

    def reset(self) -> None:
        self.raw: np.ndarray | None = None
        self.value: np.ndarray | None = None
        self.slope: np.ndarray | None = None

    def __call__(self, value: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """The filtered ``value``; ``scale`` multiplies the derivative (``1 / object_scale``)."""
        value = np.asarray(value, np.float64)
        if self.value is None or self.value.shape != value.shape:
            self.raw, self.value, self.slope = value.copy(), value.copy(), np.zeros_like(value)
            return value.copy()
        d = (value - self.raw) * scale * self.rate
        self.slope = self.slope + alpha(self.d_cutoff, self.rate) * (d - self.slope)
        a = alpha(self.min_cutoff + self.beta * np.abs(self.slope), self.rate)
        self.value = self.value + a * (value - self.value)
        self.raw = value.copy()
        return self.value.copy()
