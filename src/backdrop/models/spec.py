"""How a segmentation model wants its input and gives its output, declared as data.

A model is a file plus a :class:`ModelSpec`. The spec carries the pre-processing (input size,
layout, normalisation) and the post-processing (how to turn the raw output into a person
probability). The pipeline never branches on a model's name; it asks the spec. This follows
rembg's "one small session per model" idea, but as data so that ONNX files exported by
``backdrop train export`` can carry their own spec in their metadata.

Conventions: frames are RGB uint8 HxWx3; the returned probability map is float32 (h, w) in
[0, 1] at the model's input resolution.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..errors import ModelError
from ..resize import downscale

OUTPUT_ACTIVATIONS = ("sigmoid", "logits", "softmax", "two_channel")
"""``sigmoid``: one channel already in [0, 1]. ``logits``: one channel, sigmoid applied here.
``softmax``: C channels of logits, softmax applied here, ``person_channel`` taken.
``two_channel``: C channels of probabilities, ``person_channel`` taken as is."""

MODEL_TASKS = ("segmentation", "matting", "pose_detection", "pose_landmarks", "face_detection")
"""``segmentation``: a person probability at the model's input size, upsampled by the pipeline.
``matting``: the model takes the full frame and returns a full-resolution alpha and foreground
(:meth:`Segmenter.matte_full <backdrop.models.base.Segmenter.matte_full>`). The other three are
the person tracker's (``tracking/``): they are never loaded as segmenters."""
SEGMENTER_TASKS = ("segmentation", "matting")

ONNX_METADATA_KEY = "backdrop.spec"
"""ONNX ``metadata_props`` key whose value is :meth:`ModelSpec.to_json`."""


@dataclass(frozen=True)
class ModelSpec:
    """Pre/post-processing of one model.

    ``mean``/``std`` apply to RGB scaled to [0, 1]: ``x = (rgb / 255 - mean) / std``.
    ``layout`` is the input tensor layout, ``NHWC`` (TFLite) or ``NCHW`` (most ONNX).
    ``task`` is one of :data:`MODEL_TASKS`; ``stage_defaults`` holds the pipeline option defaults
    this model prefers (``{"roi": False}``), for the pipeline to apply where the user set none.
    """

    name: str
    input_height: int
    input_width: int
    layout: str = "NHWC"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    output: str = "sigmoid"
    person_channel: int = 0
    output_layout: str = "NHWC"
    extra: dict = field(default_factory=dict)
    task: str = "segmentation"
    stage_defaults: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in ("NHWC", "NCHW"):
            raise ModelError(f"model spec layout must be NHWC or NCHW, not {self.layout!r}")
        if self.output not in OUTPUT_ACTIVATIONS:
            raise ModelError(f"model spec output must be one of {OUTPUT_ACTIVATIONS}, not {self.output!r}")
        if self.task not in MODEL_TASKS:
            raise ModelError(f"model spec task must be one of {MODEL_TASKS}, not {self.task!r}")
        if not isinstance(self.stage_defaults, dict):
            raise ModelError(f"model spec stage_defaults must be a mapping, not {type(self.stage_defaults).__name__}")

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the model input."""
        return self.input_height, self.input_width

    @property
    def aspect(self) -> float:
        """Width over height of the model input, used by ROI tracking to shape crops."""
        return self.input_width / self.input_height

    @property
    def is_segmenter(self) -> bool:
        """True for a model that makes a matte (``--model`` takes it)."""
        return self.task in SEGMENTER_TASKS

    @property
    def is_matting(self) -> bool:
        """True for a matting model: full frame in, full-resolution alpha (and foreground) out."""
        return self.task == "matting"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"model metadata {ONNX_METADATA_KEY!r} is not valid JSON: {exc}") from None
        known = {f.name for f in fields(cls)}
        if "kind" in data and "task" not in data:  # files exported before the field was named task
            data["task"] = data["kind"]
        data = {k: v for k, v in data.items() if k in known}
        for key in ("mean", "std"):
            if key in data:
                data[key] = tuple(float(v) for v in data[key])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(f"model metadata {ONNX_METADATA_KEY!r} is incomplete: {exc}") from None

    # -- processing -------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 HxWx3 of any size -> float32 input tensor (batch of 1).

        Shrinking is anti-aliased (no aliasing on 4K frames), growing bilinear.
        """
        h, w = self.input_size
        x = downscale(np.ascontiguousarray(rgb), w, h).astype(np.float32)
        x *= 1.0 / 255.0
        if self.mean != (0.0, 0.0, 0.0) or self.std != (1.0, 1.0, 1.0):
            x = (x - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])

    def postprocess(self, out: np.ndarray) -> np.ndarray:
        """Raw output tensor -> float32 person probability (h, w) in [0, 1]."""
        y = np.asarray(out, dtype=np.float32)
        while y.ndim > 3 and y.shape[0] == 1:
            y = y[0]
        if y.ndim == 2:
            y = y[..., None] if self.output_layout == "NHWC" else y[None]
        if y.ndim != 3:
            raise ModelError(f"model {self.name} gave an output of shape {out.shape}; expected a map")
        chw = y.transpose(2, 0, 1) if self.output_layout == "NHWC" else y
        if self.output == "sigmoid":
            p = chw[min(self.person_channel, chw.shape[0] - 1)]
        elif self.output == "logits":
            p = 1.0 / (1.0 + np.exp(-np.clip(chw[min(self.person_channel, chw.shape[0] - 1)], -40, 40)))
        elif self.output == "softmax":
            e = np.exp(chw - chw.max(axis=0, keepdims=True))
            p = e[self.person_channel] / e.sum(axis=0)
        else:
            p = chw[self.person_channel]
        return np.clip(p, 0.0, 1.0).astype(np.float32, copy=False)
