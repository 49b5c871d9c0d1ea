"""ONNX export of a trained student, with its pre/post-processing in the file, and a parity check.

The exported graph takes ``input``: float32 NCHW (batch dynamic, H and W as the spec says),
RGB scaled to [0, 1] then normalised by the spec's mean/std, and gives ``matte``: float32
(N, 1, H, W) person probability (the sigmoid is inside the graph, spec output ``sigmoid``).
The :class:`ModelSpec` JSON is stored under the ``backdrop.spec`` metadata key, so
``backdrop video IN OUT --model student.onnx`` needs no other flag.

We use the TorchScript-based exporter (``dynamo=False``): it needs no extra package (the dynamo
exporter needs ``onnxscript``) and handles this convolutional graph exactly; the parity check
below is what proves the file matches the torch model.

The graph is built in memory and written once through :func:`backdrop.io.atomic.write_bytes`:
an export to a folder, a device or a full disk is one line and leaves nothing (it used to leave
``m.onnx.part`` and a traceback).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from ..models.spec import ONNX_METADATA_KEY, ModelSpec
from . import TrainError, require_torch

MIN_OPSET = 17
MAX_OPSET = 20  # the TorchScript exporter's highest (torch.onnx._constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
INPUT_NAME = "input"
OUTPUT_NAME = "matte"


def export_onnx(model, spec: ModelSpec, path: str | Path, *, opset: int = MIN_OPSET) -> Path:
    """Write ``model`` (a :class:`MattingUNet`) to ``path`` as ONNX with the spec in metadata."""
    torch = require_torch()
    import onnx

    from ..io.atomic import check_output_path, write_bytes
    from .model import MatteOnly

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TrainError(f"ONNX opset must be between {MIN_OPSET} and {MAX_OPSET}, not {opset}")
    path = check_output_path(Path(path))
    if path.suffix.lower() != ".onnx":  # `--model` picks the ONNX backend by this suffix
        raise TrainError(f"export output must end in .onnx (the model loader picks ONNX Runtime by it), "
                         f"not {path.name[-40:]!r}")
    wrapped = MatteOnly(model).cpu().eval()
    dummy = torch.zeros(1, 3, spec.input_height, spec.input_width)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(wrapped, (dummy,), buf, dynamo=False, opset_version=int(opset),
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                              do_constant_folding=True)
        except (RuntimeError, ValueError) as exc:
            raise TrainError(f"cannot export at opset {opset}: {str(exc).splitlines()[0][:160]}") from None
    proto = onnx.load_from_string(buf.getvalue())
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, spec.to_json()
    proto.producer_name = "backdrop train export"
    proto.doc_string = f"Backdrop student {spec.name}: RGB NCHW normalised per {ONNX_METADATA_KEY} -> matte"
    onnx.checker.check_model(proto)
    return write_bytes(path, proto.SerializeToString())


def export_checkpoint(checkpoint: str | Path, path: str | Path, *, opset: int = MIN_OPSET,
                      name: str | None = None) -> Path:
    """Export a ``train fit`` checkpoint (``best.pt``/``last.pt``) to ONNX."""
    from dataclasses import replace

    from .predict import load_student

    model, spec, _ = load_student(checkpoint)
    if name:
        spec = replace(spec, name=name)
    return export_onnx(model, spec, path, opset=opset)


def parity(model, onnx_path: str | Path, images: list[np.ndarray], *, threads: int = 1) -> dict:
    """Max and mean absolute difference between torch and ONNX Runtime outputs on ``images``
    (RGB uint8, any size), both fed the identical pre-processed tensor, plus a batch-of-N run
    to prove the batch axis is dynamic."""
    torch = require_torch()
    import onnxruntime as ort

    from ..models.onnx import OnnxSegmenter

    seg = OnnxSegmenter(Path(onnx_path), threads=threads, providers=["CPUExecutionProvider"])
    spec = seg.spec
    model = model.cpu().eval()
    diffs, means = [], []
    xs = []
    for img in images:
        x = spec.preprocess(img)
        xs.append(x)
        with torch.no_grad():
            ref = torch.sigmoid(model(torch.from_numpy(x))["matte"]).numpy()
        got = seg.run(x)
        d = np.abs(ref - got)
        diffs.append(float(d.max()))
        means.append(float(d.mean()))
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.concatenate(xs)
    out = sess.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
    return {"images": len(images), "max_abs_diff": max(diffs), "mean_abs_diff": float(np.mean(means)),
            "batch_shape": list(out.shape), "spec": spec.to_json()}
