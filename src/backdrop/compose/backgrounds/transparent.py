"""No background: the person with an alpha channel (RGBA PNG/WebP, ProRes 4444, VP9 alpha)."""

from __future__ import annotations

from ..composite import to_rgba
from .base import Background, BackgroundKind


class TransparentBackground(Background):
    pixel_format = "rgba"

    def composite(self, fs, adjust, finish):
        return to_rgba(fs.fg, fs.matte)


KIND = BackgroundKind(
    name="transparent", help="transparent", pixel_format="rgba", live=False,
    parse=lambda t: {} if t.strip().lower() == "transparent" else None, format=lambda p: "transparent",
    build=lambda p: TransparentBackground(),
)
