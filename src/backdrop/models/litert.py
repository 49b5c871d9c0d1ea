"""LiteRT (TensorFlow Lite) backend for ``.tflite`` models, XNNPACK on the CPU.

``ai-edge-litert`` is the maintained successor of ``tflite-runtime``; its interpreter applies
the XNNPACK delegate by default, and ``num_threads`` sets its thread pool.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Segmenter
from .spec import ModelSpec


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - dependency is declared
        raise ModelError("ai-edge-litert is not installed: pip install ai-edge-litert") from None
    return Interpreter


class LiteRTSegmenter(Segmenter):
    """Runs a ``.tflite`` segmentation model with the LiteRT interpreter."""

    def __init__(self, path: Path, spec: ModelSpec | None = None, threads: int | None = None):
        Interpreter = _interpreter_class()
        threads = threads or min(4, os.cpu_count() or 1)
        try:
            self._it = Interpreter(model_path=str(path), num_threads=int(threads))
            self._it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
        inp = self._it.get_input_details()[0]
        out = self._it.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        shape = [int(v) for v in inp["shape"]]
        if spec is None:
            if len(shape) != 4:
                raise ModelError(f"{path} has an input of shape {shape}; expected a 4-D image tensor")
            layout = "NCHW" if shape[1] == 3 and shape[3] != 3 else "NHWC"
            h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
            spec = ModelSpec(name=Path(path).stem, input_height=h, input_width=w, layout=layout,
                             output_layout=layout)
        if inp["dtype"] != np.float32:
            raise ModelError(f"{path} takes {inp['dtype']} input; only float32 models are supported")
        self.spec = spec
        self.path = Path(path)
        self.threads = int(threads)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in_index, x)
        self._it.invoke()
        return self._it.get_tensor(self._out_index)
