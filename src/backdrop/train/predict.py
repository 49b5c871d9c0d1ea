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
from .checks import MAX_SIDE
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
    except Exception as exc:  # torch raises several kinds for a corrupt, empty or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise TrainError(f"cannot read checkpoint {path.name}: {first}") from None
    if (not isinstance(state, dict) or not isinstance(state.get("model"), dict)
            or not isinstance(state.get("config"), dict) or not isinstance(state.get("spec"), str)):
        raise TrainError(f"{path.name} is not a backdrop training checkpoint")
    return state


def load_student(path: str | Path) -> tuple[MattingUNet, ModelSpec, dict]:
    """(model in eval mode, spec, raw config dict) from a checkpoint written by ``train fit``."""
    state = read_checkpoint(path)
    name = Path(path).name
    mc = state["config"].get("model", {})
    if not isinstance(mc, dict):
        raise TrainError(f"{name} is not a backdrop training checkpoint (no model config)")
    try:
        spec = ModelSpec.from_json(state["spec"])
        sides = (int(spec.input_height), int(spec.input_width))
    except Exception as exc:  # noqa: BLE001 - a foreign or damaged spec, whatever broke in it
        raise TrainError(f"{name} has an unreadable model spec: {str(exc)[:160] or type(exc).__name__}") from None
    if not all(32 <= s <= MAX_SIDE for s in sides):
        raise TrainError(f"{name} declares a {sides[0]}x{sides[1]} input: sides must be 32 to {MAX_SIDE}")
    model = build_model(_number(mc.get("width", 0.5), name), parsing_head=bool(mc.get("parsing_head", True)))
    load_weights(model, state["model"], name)
    model.eval()
    return model, spec, state["config"]


def _number(value, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TrainError(f"{name} has a bad model width {value!r}") from None


def load_weights(model, weights: dict, name: str, *, strict: bool = True):
    """``model.load_state_dict`` with one line for weights of another shape or another model."""
    try:
        return model.load_state_dict(weights, strict=strict)
    except (RuntimeError, ValueError, TypeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise TrainError(f"{name} does not match this model (model.width, parsing_head): {first}") from None
