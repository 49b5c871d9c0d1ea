"""A picture behind the person, scaled to cover the frame (never stretched), centre-cropped."""

from __future__ import annotations

import numpy as np

from ...errors import BackdropError, BackgroundError
from ...planar import Planar
from .base import Background, BackgroundKind, cover_resize
from .files import IMAGE_SUFFIXES, existing, file_param


class ImageBackground(Background):
    def __init__(self, image: np.ndarray, name: str = "image"):
        self.image = image
        self.name = name
        self._cache: np.ndarray | None = None

    def render(self, index, frame, alpha, working=None):
        h, w = frame.shape[:2]
        if self._cache is None or self._cache.shape[:2] != (h, w):
            self._cache = cover_resize(self.image, w, h)
        return self._cache

    def render_planar(self, fs):
        """The picture as planes, converted once; the RGB copy is not kept (24 MB at 4K)."""
        planar = getattr(self, "_planar", None)
        if planar is None or planar.size != fs.size:
            self._planar = planar = Planar.from_rgb(cover_resize(self.image, *fs.size))
        return planar

    def describe(self):
        return self.name


def _build(params: dict) -> ImageBackground:
    from ...io.image import read_image

    path = existing(params["path"])
    try:
        return ImageBackground(read_image(path), path.name)
    except BackdropError as exc:
        raise BackgroundError(f"background image unusable: {exc}") from None


KIND = BackgroundKind(
    name="image", help="IMG", parse=lambda t: file_param(t, IMAGE_SUFFIXES), format=lambda p: str(p["path"]),
    build=_build, files=lambda p: [p["path"]],
)
