"""Model backends, keyed by file suffix: one line here per backend, the class in its own file.

The model for this is rembg's ``session_factory`` + ``sessions/``: models are data plus a small
adapter. ``load_model``, registry resolution, the batch settings hash and the CLI's help text all
read this table, so a new backend (say, ``.xml`` for OpenVINO) is its module plus one line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Backend:
    suffix: str  # ".tflite"
    runtime: str  # what runs it, for help and errors
    module: str  # backdrop.models.<module>
    cls: str  # the Segmenter subclass in it

    def load(self):
        """The Segmenter class (imported on first use: runtimes are heavy)."""
        return getattr(importlib.import_module(f"{__package__}.{self.module}"), self.cls)


BACKENDS: dict[str, Backend] = {b.suffix: b for b in (
    Backend(".tflite", "LiteRT", "litert", "LiteRTSegmenter"),
    Backend(".onnx", "ONNX Runtime", "onnx", "OnnxSegmenter"),
)}


def backend_for(path: str | Path) -> Backend | None:
    """The backend that runs a model file, by its suffix (None: no backend does)."""
    return BACKENDS.get(Path(path).suffix.lower())


def describe_files() -> str:
    """``a .tflite/.onnx file``: the model files the backends take, for help and errors."""
    return "a " + "/".join(BACKENDS) + " file"
