"""The matte itself as an 8-bit grey picture (255 = person), for other tools."""

from __future__ import annotations

from ..composite import to_matte_image
from .base import Background, BackgroundKind


class MatteBackground(Background):
    pixel_format = "gray"
    uses_foreground = False  # nothing of the person's colours is shown

    def composite(self, fs, adjust, finish):
        return to_matte_image(fs.matte)


KIND = BackgroundKind(
    name="matte", help="matte", pixel_format="gray",
    parse=lambda t: {} if t.strip().lower() == "matte" else None, format=lambda p: "matte",
    build=lambda p: MatteBackground(),
)
