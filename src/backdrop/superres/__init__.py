"""Super-resolution x2: our own small network on luma, bilinear on colour.

- :mod:`.network`  the shipped weights (``models/weights/sr-x2.*``) and running them on a Y plane
- :mod:`.frames`   whole frames (RGB, I420) and the public :func:`upscale`
- :mod:`.files`    ``backdrop upscale IN OUT`` for videos and images
- :mod:`.degrade`  the call-like degradation (area shrink, H.264/VP8 at call bit rates) that the
  training data and the benchmark share
- :mod:`.fsr`      AMD FSR 1 (EASU + RCAS) in NumPy, the strong classical anchor of the benchmark
- :mod:`.anchors`  every method of the benchmark by name, and the benchmark itself

Frames are RGB ``uint8`` HxWx3 in and out (2H x 2W x 3 out).
"""

from .frames import MAX_OUTPUT_PIXELS, TRAINED_SCALES, Upscaler, upscale

__all__ = ["MAX_OUTPUT_PIXELS", "TRAINED_SCALES", "Upscaler", "upscale"]
