"""Training toolkit (optional ``[train]`` extra): train, distil and adapt our own portrait models.

One concern per file:

- :mod:`.model`    MobileNetV2 U-Net student (matte head + optional 3-class parsing head), counts
- :mod:`.data`     folder pairs, deterministic splits, frames from folders or videos, backgrounds
- :mod:`.geometry` border-preserving affine and thin-plate-spline warps (geometric augmentation)
- :mod:`.photometric` colour, gamma, blur, noise and JPEG (photometric augmentation)
- :mod:`.synth`    people x backgrounds composited and augmented: the training dataset
- :mod:`.losses`   BCE+Dice, Lovasz, boundary band, OHEM, consistency KL, distillation, parsing CE
- :mod:`.config`   the training config (TOML or YAML) as dataclasses
- :mod:`.loop`     the seeded, resumable training loop with checkpoints and a CSV log
- :mod:`.runtime`  device, seeding, batching and the learning-rate schedule the loop uses
- :mod:`.evaluate` labelled splits for scoring, IoU / boundary F, ``eval.json``
- :mod:`.predict`  a torch model wrapped as a :class:`backdrop.models.base.Segmenter`
- :mod:`.export`   ONNX export with the ``backdrop.spec`` metadata, and the parity check
- :mod:`.teacher`  teacher labelling of unlabelled frames with a flip / scale consistency filter
- :mod:`.adapt`    scene adaptation: label, synthesise, fine-tune, report IoU vs the teacher

Nothing here is imported by the rest of Backdrop, and this package itself imports torch only in
the modules that need it, so ``backdrop --help`` works without the extra installed.
"""

from __future__ import annotations

from ..errors import BackdropError, install_hint


class TrainError(BackdropError):
    """A training input, config or checkpoint is missing, malformed or inconsistent."""


def require_torch():
    """Import torch or raise a one-line error naming the extra to install.

    Every entry point calls this first so that a user without the ``[train]`` extra gets an
    instruction instead of a ``ModuleNotFoundError`` traceback.
    """
    try:
        import torch
    except ModuleNotFoundError:
        raise TrainError(f"training needs PyTorch: {install_hint('train')} "
                         "(or pip install torch onnx pyyaml)") from None
    return torch


__all__ = ["TrainError", "require_torch"]
