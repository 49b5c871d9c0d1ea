"""Compatibility names: backgrounds live in ``compose/backgrounds/`` (one file per kind)."""

from __future__ import annotations

from .backgrounds import Background, BackgroundSpec, cover_resize, grammar, parse_background
from .backgrounds.blur import DEFAULT_BLUR, BlurBackground
from .backgrounds.colour import NAMED_COLOURS, ColourBackground, parse_colour
from .backgrounds.files import IMAGE_SUFFIXES as IMAGE_EXTS
from .backgrounds.files import VIDEO_INPUT_SUFFIXES as VIDEO_EXTS
from .backgrounds.image import ImageBackground
from .backgrounds.matte import MatteBackground
from .backgrounds.transparent import TransparentBackground
from .backgrounds.video import VideoBackground

__all__ = ["DEFAULT_BLUR", "IMAGE_EXTS", "NAMED_COLOURS", "VIDEO_EXTS", "Background", "BackgroundSpec",
           "BlurBackground", "ColourBackground", "ImageBackground", "MatteBackground", "TransparentBackground",
           "VideoBackground", "cover_resize", "grammar", "parse_background", "parse_colour"]
