"""A torch student wrapped as a :class:`backdrop.models.base.Segmenter`, and checkpoint I/O.

Why: validation, parity checks and scene adaptation must score the student exactly as
``backdrop video --model student.onnx`` will run it — the same :class:`ModelSpec` resize and
normalisation, the same upsampling to the frame — so the torch model goes through the same
``Segmenter.infer``/``__call__`` code path as the ONNX and LiteRT backends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..models.base import Segmenter
from ..models.spec import ModelSpec
from . import TrainError
from .model import INPUT_MEAN, INPUT_STD, MattingUNet, build_model


def spec_for(name: str, height: int, width: int, **extra) -> ModelSpec:
    """The spec an exported student carries: NCHW input normalised as in training, one sigmoid
    channel out (the sigmoid is inside the graph)."""
    return ModelSpec(name=name, input_height=int(height), input_width=int(width), layout="NCHW",
                     mean=INPUT_MEAN, std=INPUT_STD, output="sigmoid", person_channel=0,
                     output_layout="NCHW", extra={"source": "backdrop train", **extra})


class TorchSegmenter(Segmenter):
    """Runs a :class:`MattingUNet` on the CPU (or its device) through the spec's processing."""

    def __init__(self, model: MattingUNet, spec: ModelSpec):
        self.model = model
        self.spec = spec

    def run(self, x: np.ndarray) -> np.ndarray:
        dev = next(self.model.parameters()).device
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                y = torch.sigmoid(self.model(torch.from_numpy(x).to(dev))["matte"].float())
        finally:
            self.model.train(was)
        return y.cpu().numpy()


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write atomically (a killed run never leaves a truncated checkpoint behind).

    Serialised in memory first (a checkpoint is a few MB): torch's own file writer reports a full
    disk as a bare ``RuntimeError``, while :func:`~backdrop.io.atomic.write_bytes` gives the
    one-line error and leaves nothing behind."""
    import io

    from ..io.atomic import write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())


def read_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint dict; ``weights_only`` so a checkpoint can never run code."""
    path = Path(path)
    if not path.is_file():
        raise TrainError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a corrupt or foreign file
        raise TrainError(f"cannot read checkpoint {path.name}: {str(exc).splitlines()[0][:160]}") from None
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise TrainError(f"{path.name} is not a backdrop training checkpoint")
    return state


def load_student(path: str | Path) -> tuple[MattingUNet, ModelSpec, dict]:
    """(model in eval mode, spec, raw config dict) from a checkpoint written by ``train fit``."""
    state = read_checkpoint(path)
    mc = state["config"].get("model", {})
    model = build_model(mc.get("width", 0.5), parsing_head=mc.get("parsing_head", True))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise TrainError(f"{Path(path).name} does not match its model config: "
                         f"{str(exc).splitlines()[0][:160]}") from None
    model.eval()
    spec = ModelSpec.from_json(state["spec"])
    return model, spec, state["config"]
