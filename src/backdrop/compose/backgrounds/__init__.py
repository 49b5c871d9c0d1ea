"""Backgrounds: one ``--background`` grammar, one file per kind, one registry line each.

:class:`BackgroundSpec` is the parsed form of a ``--background`` value; the CLI, the live
controls, the web data channel and batch all parse and print backgrounds through it, so the
grammar exists once. ``KINDS`` is the registry, tried in order (keywords before file names):

    transparent | matte | blur[:STRENGTH] | presenter:[PLACE...:]SLIDES | #RRGGBB | IMG | VIDEO
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackgroundError
from . import blur, colour, image, matte, presenter, transparent, video
from .base import Background, BackgroundKind, cover_resize, no_files

KINDS: dict[str, BackgroundKind] = {k.name: k for k in (
    transparent.KIND,
    matte.KIND,
    blur.KIND,
    presenter.KIND,
    colour.KIND,
    image.KIND,
    video.KIND,
)}
DEFAULT_BACKGROUND = "blur"


def grammar() -> str:
    """The accepted forms, for help texts and errors."""
    return " | ".join(k.help for k in KINDS.values())


def page_kinds() -> list[str]:
    """The forms a web page may pick itself: live kinds that read no file (its own uploads aside)."""
    return [k.help for k in KINDS.values() if k.live and k.files is no_files]


@dataclass(frozen=True)
class BackgroundSpec:
    """A parsed ``--background`` value: its kind and that kind's parameters."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BackgroundError(f"unknown background kind {self.kind!r}: use one of {', '.join(KINDS)}")

    @classmethod
    def parse(cls, text: str | Path) -> "BackgroundSpec":
        """The spec of a ``--background`` value, or :class:`BackgroundError` saying what is accepted."""
        value = str(text).strip()
        if not value:
            raise BackgroundError(f"empty background: use {grammar()}")
        for kind in KINDS.values():
            params = kind.parse(value)
            if params is not None:
                return cls(kind.name, params)
        raise BackgroundError(f"unsupported background {value[:80]!r}: use {grammar()}")

    @property
    def declaration(self) -> BackgroundKind:
        return KINDS[self.kind]

    def format(self) -> str:
        """The text that parses back to this spec."""
        return self.declaration.format(self.params)

    @property
    def pixel_format(self) -> str:
        return self.declaration.pixel_format

    @property
    def live(self) -> bool:
        return self.declaration.live

    def files(self) -> list[Path]:
        """The files this background reads (the batch settings hash covers their contents)."""
        return self.declaration.files(self.params)

    def build(self) -> Background:
        bg = self.declaration.build(self.params)
        bg.spec = self
        return bg


def parse_background(value: Any) -> Background:
    """A :class:`Background` from an API or CLI value: a spec text or path, a BackgroundSpec, an
    RGB tuple, an RGB uint8 HxWx3 array (an image), a Background (used as is) or None (blur)."""
    if isinstance(value, Background):
        return value
    if value is None:
        value = DEFAULT_BACKGROUND
    if isinstance(value, np.ndarray):
        if value.ndim != 3 or value.shape[2] != 3 or value.dtype != np.uint8:
            raise BackgroundError("a background array must be RGB uint8 HxWx3")
        return image.ImageBackground(value, "array")
    if isinstance(value, tuple) and len(value) == 3:
        return colour.ColourBackground(value)
    spec = value if isinstance(value, BackgroundSpec) else BackgroundSpec.parse(value)
    return spec.build()


__all__ = ["Background", "BackgroundKind", "BackgroundSpec", "DEFAULT_BACKGROUND", "KINDS", "cover_resize",
           "grammar", "page_kinds", "parse_background"]
