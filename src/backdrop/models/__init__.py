"""Where a matte comes from: model registry and inference backends.

``load_model("selfie")`` or ``load_model("my.onnx")`` returns a :class:`Segmenter`: frame (RGB
uint8 HxWx3) in, matte (float32 HxW in [0, 1], frame size) out.
"""

from __future__ import annotations

import os

from ..errors import ModelError
from .base import Segmenter
from .registry import DEFAULT_MODEL, KNOWN_MODELS, fetch, model_dir, resolve
from .spec import ModelSpec


def load_model(model: str | os.PathLike = DEFAULT_MODEL, *, threads: int | None = None,
               quiet: bool = False) -> Segmenter:
    """Build the backend for a model name (``selfie``, ``selfie-landscape``) or file path."""
    path, spec = resolve(model, quiet=quiet)
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        from .litert import LiteRTSegmenter

        return LiteRTSegmenter(path, spec, threads=threads)
    if suffix == ".onnx":
        from .onnx import OnnxSegmenter

        return OnnxSegmenter(path, spec, threads=threads)
    raise ModelError(f"unsupported model file {path}: use .tflite or .onnx")  # pragma: no cover


__all__ = ["DEFAULT_MODEL", "KNOWN_MODELS", "ModelSpec", "Segmenter", "fetch", "load_model", "model_dir"]
