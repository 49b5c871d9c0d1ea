"""Backgrounds that are files: which suffix is which kind, one set for the whole project."""

from __future__ import annotations

from pathlib import Path

from ...errors import BackgroundError
from ...io.image import IMAGE_SUFFIXES
from ...io.video import VIDEO_INPUT_SUFFIXES


def file_param(text: str, suffixes) -> dict | None:
    """``{"path": Path}`` when ``text`` names a file with one of ``suffixes`` (None otherwise)."""
    path = Path(text.strip()).expanduser()
    return {"path": path} if path.suffix.lower() in suffixes else None


def existing(path: Path) -> Path:
    if not path.is_file():
        raise BackgroundError(f"background file not found: {path}")
    return path


__all__ = ["IMAGE_SUFFIXES", "VIDEO_INPUT_SUFFIXES", "existing", "file_param"]
