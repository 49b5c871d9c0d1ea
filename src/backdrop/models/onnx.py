"""ONNX Runtime backend for ``.onnx`` models (RVM, MODNet, our own exports).

Providers are chosen automatically: CUDA (and TensorRT/CoreML/DirectML where installed) before
the CPU. The model's pre/post-processing comes from the ``backdrop.spec`` metadata entry written
by ``backdrop train export``; without it, it is inferred from the input shape (see
:func:`guess_spec`). Recurrent models in the Robust Video Matting style (inputs ``r1i``.. fed
from outputs ``r1o``..) keep their state between frames until :meth:`reset`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .base import Segmenter
from .spec import ONNX_METADATA_KEY, ModelSpec

PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "ROCMExecutionProvider",
    "CoreMLExecutionProvider",
    "DmlExecutionProvider",
    "CPUExecutionProvider",
)
MATTE_OUTPUT_NAMES = ("pha", "alpha", "matte", "mask", "output")


def choose_providers() -> list[str]:
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    chosen = [p for p in PREFERRED_PROVIDERS if p in available and p != "TensorrtExecutionProvider"]
    return chosen or ["CPUExecutionProvider"]


def guess_spec(name: str, shape: list, default_size: int = 256) -> ModelSpec:
    """Spec for an ONNX file without metadata: layout from where the 3 channels are."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 4:
        raise ModelError(f"{name}: input has shape {shape}; expected a 4-D image tensor")
    layout = "NHWC" if dims[3] == 3 and dims[1] != 3 else "NCHW"
    h, w = (dims[1], dims[2]) if layout == "NHWC" else (dims[2], dims[3])
    return ModelSpec(name=name, input_height=h or default_size, input_width=w or default_size,
                     layout=layout, output_layout=layout)


class OnnxSegmenter(Segmenter):
    """Runs a ``.onnx`` segmentation or matting model with ONNX Runtime."""

    def __init__(self, path: Path, spec: ModelSpec | None = None, threads: int | None = None,
                 providers: list[str] | None = None):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads or min(4, os.cpu_count() or 1))
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts,
                                              providers=providers or choose_providers())
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0][:200]}") from None
        inputs = self._sess.get_inputs()
        outputs = self._sess.get_outputs()
        self._image_input = inputs[0].name
        meta = self._sess.get_modelmeta().custom_metadata_map
        if spec is None:
            spec = (ModelSpec.from_json(meta[ONNX_METADATA_KEY]) if ONNX_METADATA_KEY in meta
                    else guess_spec(Path(path).stem, list(inputs[0].shape)))
        self.spec = spec
        self.path = Path(path)
        out_names = [o.name for o in outputs]
        self._output = next((n for n in MATTE_OUTPUT_NAMES if n in out_names), out_names[0])
        # recurrent state: input "r1i" is fed from output "r1o"
        self._recurrent = {i.name: i.name[:-1] + "o" for i in inputs[1:]
                           if i.name.endswith("i") and i.name[:-1] + "o" in out_names}
        self._scalars = {i.name: np.asarray([spec.extra.get(i.name, 1.0)], np.float32)
                         for i in inputs[1:] if i.name not in self._recurrent}
        self._state: dict[str, np.ndarray] = {}
        self.providers = self._sess.get_providers()

    def reset(self) -> None:
        self._state = {}

    def run(self, x: np.ndarray) -> np.ndarray:
        feeds = {self._image_input: x, **self._scalars}
        for name in self._recurrent:
            feeds[name] = self._state.get(name, np.zeros((1, 1, 1, 1), np.float32))
        fetch = [self._output, *self._recurrent.values()]
        results = self._sess.run(fetch, feeds)
        for (name, _), value in zip(self._recurrent.items(), results[1:]):
            self._state[name] = value
        return results[0]
