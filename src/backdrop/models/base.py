"""The one small interface every segmentation backend implements.

``segmenter(frame)`` takes an RGB uint8 HxWx3 frame and returns a float32 HxW matte in [0, 1]
at the frame's size. ``segmenter.infer(frame)`` returns the probability at the model's own
resolution, which the refinement stage upsamples with the full-resolution frame as a guide.
"""

from __future__ import annotations

import cv2
import numpy as np

from .spec import ModelSpec


class Segmenter:
    spec: ModelSpec

    def run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """Raw input tensor -> raw output tensor."""
        raise NotImplementedError

    def infer(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> float32 person probability at model resolution, in [0, 1]."""
        return self.spec.postprocess(self.run(self.spec.preprocess(rgb)))

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 -> float32 HxW matte in [0, 1] at the frame size (bilinear)."""
        low = self.infer(rgb)
        h, w = rgb.shape[:2]
        return cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)

    def reset(self) -> None:
        """Forget recurrent state (a new stream starts). Stateless models do nothing."""
