"""ONNX Runtime backend for ``.onnx`` models (RVM, MODNet, our own exports).

Providers are chosen automatically: CUDA (and TensorRT/CoreML/DirectML where installed) before
the CPU. The model's pre/post-processing comes from the ``backdrop.spec`` metadata entry written
by ``backdrop train export``; without it, it is inferred from the input shape (see
:func:`guess_spec`). Recurrent models in the Robust Video Matting style (inputs ``r1i``.. fed
from outputs ``r1o``..) keep their state between frames until :meth:`reset`, or until the
frame size or working size changes (the state's shape follows them). A file with RVM's tensor
names (``matting.is_rvm_style``) is a matting model: :meth:`OnnxSegmenter.matte_full` gives its
full-resolution alpha and foreground.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError, ModelError
from .base import Segmenter
from .matting import RVM_RATIO_INPUT, downsample_ratio, is_rvm_style, rvm_spec
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


def guess_spec(name: str, shape: list, default_size: int = 256, *, matting: bool = False) -> ModelSpec:
    """Spec for an ONNX file without metadata: layout from where the 3 channels are.

    ``matting=True`` (RVM-style tensor names): an NCHW matting spec with RVM's stage defaults.
    """
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 4:
        raise ModelError(f"{name}: input has shape {shape}; expected a 4-D image tensor")
    layout = "NHWC" if dims[3] == 3 and dims[1] != 3 else "NCHW"
    h, w = (dims[1], dims[2]) if layout == "NHWC" else (dims[2], dims[3])
    if matting:
        return rvm_spec(name, height=h or default_size, width=w or default_size)
    return ModelSpec(name=name, input_height=h or default_size, input_width=w or default_size,
                     layout=layout, output_layout=layout)


def _rgb8_from_planes(planes: np.ndarray) -> np.ndarray:
    """float 3xHxW in [0, 1] -> RGB uint8 HxWx3 (rounded, saturated)."""
    np.clip(planes, 0.0, 1.0, out=planes)
    return cv2.merge([cv2.convertScaleAbs(p, alpha=255.0) for p in planes])


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
        image = inputs[0]
        self._image_input = image.name
        self._dtype = np.float16 if image.type == "tensor(float16)" else np.float32
        out_names = [o.name for o in outputs]
        self._rvm = is_rvm_style([i.name for i in inputs], out_names)
        meta = self._sess.get_modelmeta().custom_metadata_map
        if spec is None:
            spec = (ModelSpec.from_json(meta[ONNX_METADATA_KEY]) if ONNX_METADATA_KEY in meta
                    else guess_spec(Path(path).stem, list(image.shape), matting=self._rvm))
        self.spec = spec
        self.path = Path(path)
        self._output = next((n for n in MATTE_OUTPUT_NAMES if n in out_names), out_names[0])
        # recurrent state: input "r1i" is fed from output "r1o"
        self._recurrent = {i.name: i.name[:-1] + "o" for i in inputs[1:]
                           if i.name.endswith("i") and i.name[:-1] + "o" in out_names}
        self._scalars = {i.name: np.asarray([spec.extra.get(i.name, 1.0)], np.float32)
                         for i in inputs[1:] if i.name not in self._recurrent}
        # a file exported at one fixed size takes frames resized to it (NCHW: dims 2, 3)
        fixed = [d if isinstance(d, int) and d > 0 else None for d in list(image.shape)[2:4]]
        self._fixed_hw = tuple(fixed) if len(fixed) == 2 and None not in fixed else None
        self._state: dict[str, np.ndarray] = {}
        self._state_key: tuple | None = None
        self.providers = self._sess.get_providers()

    def reset(self) -> None:
        self._state = {}
        self._state_key = None

    def _state_feeds(self, key: tuple) -> dict[str, np.ndarray]:
        """The recurrent inputs for a call; a new ``key`` (input shape, ratio) starts from zeros."""
        if key != self._state_key:
            self.reset()
            self._state_key = key
        zeros = np.zeros((1, 1, 1, 1), self._dtype)
        return {name: self._state.get(name, zeros) for name in self._recurrent}

    def _keep_state(self, values: list[np.ndarray]) -> None:
        self._state = dict(zip(self._recurrent, values))

    def run(self, x: np.ndarray) -> np.ndarray:
        x = x.astype(self._dtype, copy=False)
        ratio = self._scalars.get(RVM_RATIO_INPUT)
        key = (x.shape, None if ratio is None else float(ratio[0]))
        feeds = {self._image_input: x, **self._scalars, **self._state_feeds(key)}
        fetch = [self._output, *self._recurrent.values()]
        results = self._sess.run(fetch, feeds)
        self._keep_state(results[1:])
        return results[0]

    def matte_full(self, rgb: np.ndarray, long_side: int) -> tuple[np.ndarray, np.ndarray | None]:
        """RVM-style models: the frame at full resolution through the network, shrunk internally by
        ``downsample_ratio = min(1, long_side / max(h, w))``; (alpha HxW, foreground HxWx3)."""
        if not (self._rvm and self.spec.is_matting):
            return super().matte_full(rgb, long_side)
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 \
                or 0 in rgb.shape:
            raise InputError(f"matte_full takes an RGB uint8 HxWx3 frame, not {getattr(rgb, 'shape', type(rgb))}")
        h, w = rgb.shape[:2]
        frame = rgb if self._fixed_hw in (None, (h, w)) else cv2.resize(
            rgb, self._fixed_hw[::-1], interpolation=cv2.INTER_AREA)
        fh, fw = frame.shape[:2]
        ratio = downsample_ratio(fh, fw, long_side)
        src = np.empty((1, 3, fh, fw), self._dtype)
        np.multiply(frame.transpose(2, 0, 1), self._dtype(1.0 / 255.0), out=src[0])
        feeds = {**self._scalars, self._image_input: src, RVM_RATIO_INPUT: np.asarray([ratio], np.float32),
                 **self._state_feeds((src.shape, ratio))}
        try:
            fgr, pha, *rec = self._sess.run(["fgr", "pha", *self._recurrent.values()], feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"model {self.spec.name} failed on a {w}x{h} frame: "
                             f"{str(exc).splitlines()[0][:200]}") from None
        self._keep_state(rec)
        alpha = np.clip(pha[0, 0].astype(np.float32, copy=False), 0.0, 1.0)
        fg = _rgb8_from_planes(fgr[0].astype(np.float32, copy=False))
        if (fh, fw) != (h, w):
            alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR)
            fg = cv2.resize(fg, (w, h), interpolation=cv2.INTER_LINEAR)
        return alpha, fg
