"""Compatibility names: presenter mode is a background kind, ``compose/backgrounds/presenter.py``."""

from __future__ import annotations

from .backgrounds.presenter import PLACEMENTS, PresenterBackground, fit_letterbox, load_slides, parse_placement

__all__ = ["PLACEMENTS", "PresenterBackground", "fit_letterbox", "load_slides", "parse_placement"]
