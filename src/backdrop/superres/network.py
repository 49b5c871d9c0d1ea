"""The shipped x2 luma network: its weights file, and running it on a Y plane.

The weights live in ``backdrop/models/weights/`` inside the package (Apache-2.0, ours, made by
``backdrop train sr configs/sr-x2.toml``; the config and training log sit beside them):

- ``sr-x2.npz``: the convolution weights (OIHW float32) and biases, and ``meta`` (JSON: scale,
  radius, channels). The one source of the numbers: the page gets them from it as JSON
  (:func:`weights_json`), the tests check the ONNX file against it.
- ``sr-x2.onnx``: the same network as a graph, which OpenCV's ``cv2.dnn`` runs by default.
  Measured on the same file, the candidates taking turns (``backdrop bench --upscale``), one
  640x360 -> 1280x720 RGB frame on the 2 shared cores at load average 3: ``cv2.dnn`` median
  29.5 ms (min 23.2), ONNX Runtime 36.9 ms with two threads (min 22.4) and 32.6 ms with one
  (min 31.4), plain NumPy convolutions ~100 ms. ONNX Runtime's best case is as good, but its
  typical frame is slower when other work shares the cores; ``backend="onnxruntime"`` picks it.

Input of the graph: the Y plane (BT.601 limited range, as the codec delivers it) as float32 in
[0, 1], padded by ``radius`` pixels of edge replication, shape (1, 1, H+2r, W+2r). Output: the
residual to add to the bilinear 2x of the plane, (1, 1, 2H, 2W), in the same [0, 1] units.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "models" / "weights"
DEFAULT_MODEL = "sr-x2"
INPUT_NAME, OUTPUT_NAME = "y", "residual"
BACKENDS = ("onnxruntime", "opencv", "numpy")
DEFAULT_BACKEND = "opencv"  # the measurement above


def save_weights(path: Path, layers: list[tuple[np.ndarray, np.ndarray]], meta: dict) -> Path:
    """Write ``layers`` [(weight OIHW, bias)] and ``meta`` as one .npz (atomically)."""
    arrays = {"meta": np.array(json.dumps(meta))}
    for i, (w, b) in enumerate(layers):
        arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    tmp = path.with_name(path.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class SRWeights:
    """A loaded network: ``layers`` [(weight OIHW float32, bias)], 3x3 each, ReLU between."""

    name: str
    scale: int
    layers: tuple[tuple[np.ndarray, np.ndarray], ...]
    meta: dict
    path: Path

    @property
    def radius(self) -> int:
        return len(self.layers)

    @property
    def onnx_path(self) -> Path:
        return self.path.with_suffix(".onnx")

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL) -> "SRWeights":
        p = Path(name_or_path)
        path = p if p.suffix == ".npz" else WEIGHTS_DIR / f"{p.name}.npz"
        if not path.is_file():
            raise ModelError(f"super-resolution weights not found: {path} (reinstall backdrop, or remake "
                             f"them with: backdrop train sr configs/sr-x2.toml)")
        try:
            with np.load(path) as z:
                meta = json.loads(str(z["meta"]))
                n = sum(1 for k in z.files if k.startswith("w"))
                layers = tuple((z[f"w{i}"], z[f"b{i}"]) for i in range(n))
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read super-resolution weights {path.name}: {exc}") from None
        return cls(meta.get("name", path.stem), int(meta.get("scale", 2)), layers, meta, path)

    def to_json(self) -> dict:
        """What the page's WebGL passes need: per layer its sizes, weights (OIHW, flat) and bias."""
        return {"name": self.name, "scale": self.scale, "radius": self.radius,
                "layers": [{"in": int(w.shape[1]), "out": int(w.shape[0]),
                            "weights": [round(float(v), 7) for v in w.ravel()],
                            "bias": [round(float(v), 7) for v in b]} for w, b in self.layers]}


def numpy_residual(weights: SRWeights, padded: np.ndarray) -> np.ndarray:
    """The reference: plain 3x3 convolutions (``cv2.filter2D``, one per input/output channel
    pair) and the pixel shuffle in NumPy. Slow; it defines what the other backends must give."""
    x = [padded.astype(np.float32)]
    for i, (w, b) in enumerate(weights.layers):
        out = []
        for o in range(w.shape[0]):
            acc = np.full((x[0].shape[0] - 2, x[0].shape[1] - 2), b[o], np.float32)
            for c, plane in enumerate(x):
                acc += cv2.filter2D(plane, -1, w[o, c], borderType=cv2.BORDER_CONSTANT)[1:-1, 1:-1]
            out.append(np.maximum(acc, 0) if i < len(weights.layers) - 1 else acc)
        x = out
    s = weights.scale
    h, w_ = x[0].shape
    return np.stack(x).reshape(s, s, h, w_).transpose(2, 0, 3, 1).reshape(h * s, w_ * s)


class LumaNet:
    """Runs the network on uint8 Y planes: ``residual(y)`` -> float32 (2H, 2W) in levels."""

    def __init__(self, weights: SRWeights | None = None, *, backend: str = DEFAULT_BACKEND, threads: int = 2):
        self.weights = weights or SRWeights.load()
        self.backend = backend
        if backend not in BACKENDS:
            raise ModelError(f"unknown super-resolution backend {backend!r}: one of {', '.join(BACKENDS)}")
        path = self.weights.onnx_path
        if backend != "numpy" and not path.is_file():
            raise ModelError(f"super-resolution graph not found: {path}")
        if backend == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = max(1, int(threads)), 1
            # no spin-waiting between the small convolutions: on two shared cores, and beside the
            # decode and encode threads of a file job, a spinning thread only takes their CPU
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            so.log_severity_level = 3
            self._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        elif backend == "opencv":
            self._net = cv2.dnn.readNetFromONNX(str(path))

    def padded(self, y: np.ndarray) -> np.ndarray:
        r = self.weights.radius
        return cv2.copyMakeBorder(y, r, r, r, r, cv2.BORDER_REPLICATE).astype(np.float32) * np.float32(1 / 255)

    def residual(self, y: np.ndarray) -> np.ndarray:
        """uint8 Y (H, W) -> the correction over its bilinear 2x, float32 (2H, 2W), in levels."""
        x = self.padded(y)
        if self.backend == "onnxruntime":
            out = self._session.run(None, {INPUT_NAME: x[None, None]})[0][0, 0]
        elif self.backend == "opencv":
            self._net.setInput(x[None, None])
            out = self._net.forward()[0, 0]
        else:
            out = numpy_residual(self.weights, x)
        return out * np.float32(255.0)


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "DEFAULT_MODEL", "LumaNet", "SRWeights", "WEIGHTS_DIR", "numpy_residual", "save_weights"]
