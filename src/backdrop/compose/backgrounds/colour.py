"""A solid colour: ``#RRGGBB``, ``#RGB`` or a name (green, blue, black, white, grey)."""

from __future__ import annotations

import re

import numpy as np

from ...planar import Planar
from .base import Background, BackgroundKind

NAMED_COLOURS = {
    "green": (0, 177, 64), "blue": (0, 71, 187), "black": (0, 0, 0), "white": (255, 255, 255),
    "grey": (128, 128, 128), "gray": (128, 128, 128),
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


def parse_colour(text: str) -> tuple[int, int, int] | None:
    t = text.strip().lower()
    if t in NAMED_COLOURS:
        return NAMED_COLOURS[t]
    m = _HEX.match(t)
    if not m or not t.startswith("#"):
        return None
    hx = m.group(1)
    if len(hx) == 3:
        hx = "".join(c * 2 for c in hx)
    return tuple(int(hx[i:i + 2], 16) for i in (0, 2, 4))


def format_colour(rgb) -> str:
    return "#%02x%02x%02x" % tuple(rgb)


class ColourBackground(Background):
    def __init__(self, rgb: tuple[int, int, int]):
        self.rgb = tuple(int(c) for c in rgb)
        self._cache: np.ndarray | None = None

    def render(self, index, frame, alpha, working=None):
        if self._cache is None or self._cache.shape != frame.shape:
            self._cache = np.empty_like(frame)
            self._cache[:] = self.rgb
        return self._cache

    def render_planar(self, fs):
        """The colour as planes (its Y, U, V from a 2x2 conversion), without a full RGB frame."""
        planar = getattr(self, "_planar", None)
        if planar is None or planar.size != fs.size:
            one = Planar.from_rgb(np.full((2, 2, 3), self.rgb, np.uint8))
            planar = self._planar = Planar.blank(*fs.size)
            for k in range(3):
                planar.planes[k][:] = one.planes[k][0, 0]
        return planar

    def describe(self):
        return KIND.format({"rgb": self.rgb})


def _parse(text: str) -> dict | None:
    rgb = parse_colour(text)
    return None if rgb is None else {"rgb": rgb}


KIND = BackgroundKind(
    name="colour", help="#RRGGBB", parse=_parse, format=lambda p: format_colour(p["rgb"]),
    build=lambda p: ColourBackground(p["rgb"]),
)
