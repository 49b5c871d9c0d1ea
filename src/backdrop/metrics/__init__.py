"""Accuracy and stability metrics: pure NumPy/OpenCV, no I/O.

Every function takes mattes as ``float32`` arrays of shape HxW with values in [0, 1]
(1 = person), the project-wide convention; a ground truth is a matte too (a binary mask is just
a matte with values 0 and 1). Prediction and truth must have the same shape: resizing the truth
to the image is the caller's job (:mod:`backdrop.evaluate` does it), because how to resize is a
property of the data set, not of the metric.

- :mod:`.segmentation`: IoU (per image and dataset-level), boundary F-measure.
- :mod:`.matting`: MAD, MSE, Grad, Conn (as Robust Video Matting evaluates), SAD in the unknown band.
- :mod:`.temporal`: dtSSD against per-frame truth, flicker without truth.
- :mod:`.composite`: colour error of a composite against the true one, whole frame and edge band.
- :mod:`.texture`: a face's skin texture and edges before and after a touch-up.
"""

from .composite import EDGE_BAND_DILATE, EDGE_BAND_HIGH, EDGE_BAND_LOW, composite_error, edge_band, true_composite
from .matting import conn, grad, mad, mse, sad_unknown, unknown_band
from .segmentation import IoUAccumulator, boundary_f, boundary_pr, iou
from .temporal import DtSSDAccumulator, FlickerAccumulator, dtssd, dtssd_pair, flicker

__all__ = ["iou", "boundary_f", "boundary_pr", "IoUAccumulator", "mad", "mse", "grad", "conn",
           "sad_unknown", "unknown_band", "dtssd", "dtssd_pair", "DtSSDAccumulator", "flicker",
           "FlickerAccumulator", "composite_error", "edge_band", "true_composite", "EDGE_BAND_LOW",
           "EDGE_BAND_HIGH", "EDGE_BAND_DILATE"]
