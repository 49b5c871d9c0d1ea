"""The one small interface every segmentation backend implements.

``segmenter(frame)`` takes an RGB uint8 HxWx3 frame and returns a float32 HxW matte in [0, 1]
at the frame's size. ``segmenter.infer(frame)`` returns the probability at the model's own
resolution, which the refinement stage upsamples with the full-resolution frame as a guide.

A matting model (``spec.task == "matting"``) also answers ``segmenter.matte_full(frame,
long_side)``: the alpha at the frame's full size and, where the model makes one, the person's
foreground colours (RGB uint8 HxWx3), with its recurrent state carried from call to call.
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

    def matte_full(self, rgb: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB uint8 HxWx3 frame -> (alpha float32 HxW in [0, 1], foreground RGB uint8 HxWx3 or None),
        both at the frame's size; ``long_side`` is the model's working size on the frame's long side.

        Segmentation models raise NotImplementedError. A matting model without a full-frame path
        of its own gets its alpha at the spec's input size, upsampled bilinearly, and no foreground.
        """
        if not self.spec.is_matting:
            raise NotImplementedError(
                f"model {self.spec.name} is a {self.spec.task} model; matte_full needs a matting model")
        return self(rgb), None

    def reset(self) -> None:
        """Forget recurrent state (a new stream starts). Stateless models do nothing."""
