"""The learned relight estimate at run time: a two-layer perceptron, in NumPy, from its JSON file.

``backdrop train relight`` (``train/relight.py``) fits it; it maps
``relight_estimate.scene_features`` to a :class:`~backdrop.compose.relight.Look`. Nothing here
needs PyTorch. The stage uses it only when ``models/weights/relight.json`` is shipped, which is
only when it beats the classical estimate on the held-out photos (``docs/quality.md``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError
from .relight import Look
from .relight_estimate import FEATURES, Scene, scene_features

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "weights" / "relight.json"


class LearnedLook:
    """A :class:`Scene` -> :class:`Look` function from a ``relight.json`` weights file."""

    def __init__(self, path: str | Path = SHIPPED):
        try:
            data = json.loads(Path(path).read_text())
            self.mean = np.float32(data["mean"])
            self.std = np.float32(data["std"])
            self.layers = [(np.float32(L["weight"]), np.float32(L["bias"])) for L in data["layers"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"relight weights unusable: {path}: {exc}") from None
        if data.get("features") != FEATURES or self.mean.shape != (FEATURES,):
            raise InputError(f"relight weights {path} were made for other features")

    def __call__(self, scene: Scene) -> Look:
        if scene.person.weight <= 1e-6 or scene.background.weight <= 1e-6 or scene.scene <= 0:
            return Look()
        h = (scene_features(scene) - self.mean) / self.std
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if i < len(self.layers) - 1:
                h = np.tanh(h)
        return Look.from_vector(h).scaled(scene.scene)


def shipped() -> LearnedLook | None:
    """The shipped learned estimate, or None (the classical one is used)."""
    return LearnedLook() if SHIPPED.is_file() else None
