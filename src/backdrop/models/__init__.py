"""Where a matte comes from: model registry and inference backends.

``load_model("selfie")`` or ``load_model("my.onnx")`` returns a :class:`Segmenter`: frame (RGB
uint8 HxWx3) in, matte (float32 HxW in [0, 1], frame size) out. A matting model
(``load_model("rvm")``, opt-in, GPL-3.0 weights; ``segmenter.spec.task == "matting"``) also gives
``segmenter.matte_full(frame, long_side)``: (alpha HxW, foreground HxWx3 or None) at frame size.
"""

from __future__ import annotations

import os

from ..errors import ModelError
from .backends import BACKENDS, backend_for, describe_files
from .base import Segmenter
from .registry import DEFAULT_MODEL, KNOWN_MODELS, MODELS, fetch, model_dir, resolve
from .spec import ModelSpec


def load_model(model: str | os.PathLike = DEFAULT_MODEL, *, threads: int | None = None,
               quiet: bool = False) -> Segmenter:
    """Build the backend for a model name (``selfie``, ``selfie-landscape``, ``rvm``) or file path.

    A known model not cached yet is fetched first (``rvm``, opt-in, only because it is named here).
    """
    path, spec = resolve(model, quiet=quiet)
    backend = backend_for(path)
    if backend is None:  # pragma: no cover - resolve() accepts only backend suffixes
        raise ModelError(f"unsupported model file {path}: use {describe_files()}")
    return backend.load()(path, spec, threads=threads)


def stage_defaults(model: str | os.PathLike) -> dict:
    """The pipeline option defaults a model prefers (``spec.stage_defaults``), without loading it:
    from the registry for a name, from the tensor names for an RVM-style ``.onnx`` file."""
    key = str(model)
    if key in MODELS:
        return dict(MODELS[key].spec.stage_defaults)
    path = os.path.expanduser(key)
    if key.lower().endswith(".onnx") and os.path.isfile(path):
        try:
            import onnxruntime as ort

            from .matting import RVM_STAGE_DEFAULTS, is_rvm_style

            sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            names = ([i.name for i in sess.get_inputs()], [o.name for o in sess.get_outputs()])
            return dict(RVM_STAGE_DEFAULTS) if is_rvm_style(*names) else {}
        except Exception:  # a broken file is reported by load_model, with its own message
            return {}
    return {}


__all__ = ["BACKENDS", "DEFAULT_MODEL", "KNOWN_MODELS", "MODELS", "ModelSpec", "Segmenter", "fetch", "load_model", "model_dir", "stage_defaults"]
