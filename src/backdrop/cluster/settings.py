"""The settings hash: the one place that decides which settings make an output different.

The manifest records, for each output, the sha256 of its input and this hash; a rerun skips an
output only when both match. So everything that can change an output's bytes must go into
:func:`batch_settings_hash`, and nothing that cannot (a progress flag, a thread count) may,
or reruns would redo finished work. Files named by a setting (a background image or video, a
model file) go in by content, not by path, so editing such a file redoes the outputs that used
it and moving it does not. Keep it one function: extending what is hashed is then one edit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__
from ..compose.backgrounds import BackgroundSpec
from ..engine import PipelineOptions
from ..hashing import sha256_file
from ..models.backends import backend_for
from .manifest import settings_hash


def _by_content(path: Path) -> dict[str, str]:
    return {"file": path.name, "sha256": sha256_file(path)}


def batch_settings_hash(background: Any, options: PipelineOptions, crf: int, preset: str,
                        keep_audio: bool) -> str:
    """A stable hash of everything that changes an output's content; a change means a redo.

    The options are those declared ``hashed`` (``PipelineOptions.settings()``: not the thread
    count, not ``quiet``); the background is its spec text plus the content of every file the
    spec reads (an image, a video, each slide); a model file any backend runs goes in by content.
    """
    opts = options.settings()
    spec = BackgroundSpec.parse(background)
    files = [_by_content(p) for p in spec.files() if Path(p).is_file()]
    bg: Any = str(background)
    if len(files) == 1 and spec.kind in ("image", "video"):
        bg = files[0]
    elif files:  # presenter: the slides by content, the placement and timing by value
        bg = {"kind": spec.kind, "files": files,
              "params": {k: v for k, v in spec.params.items() if k != "source"}}
    model = Path(str(options.model)).expanduser()
    if backend_for(model) is not None and model.is_file():
        opts["model"] = _by_content(model)
    return settings_hash({"backdrop": __version__, "options": opts, "background": bg, "crf": crf,
                          "preset": preset, "audio": bool(keep_audio)})
