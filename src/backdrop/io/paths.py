"""Input path rules shared by every command that reads files or folders.

Why one place: ``image`` learned to skip macOS ``._photo.png`` metadata files while ``batch``
still failed on them, and each command said "input not found" for a path that exists as a
symlink loop. A rule written once is the same for every command.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import InputError


def is_hidden(name: str) -> bool:
    """True for names a folder scan skips: dot files such as ``._photo.png`` (AppleDouble metadata
    that macOS leaves beside a copied file; no image), ``.DS_Store``, and our own temp files
    (``.photo.x1y2z3a4.part.png``, a run still writing or killed)."""
    return name.startswith(".")


def why_missing(path: str | Path) -> str:
    """Why ``path`` cannot be opened although it was named: ``is a symlink loop``, ``is a broken
    link (to ...)``, ``is in a folder that cannot be searched`` or ``not found``."""
    p = Path(path)
    try:
        os.stat(p)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        if exc.errno == errno.EACCES:
            return "is in a folder that cannot be searched (permission denied)"
        if exc.errno == errno.ENAMETOOLONG:
            return "has a name too long for the file system"
        if p.is_symlink():
            try:
                return f"is a broken link (to {os.readlink(p)})"
            except OSError:
                return "is a broken link"
        return "not found"
    return "exists"


def missing_input(path: str | Path, what: str = "input") -> InputError:
    """The one-line error for a named input that is not there: ``input not found: x.mp4`` or
    ``input x.mp4 is a symlink loop``."""
    reason = why_missing(path)
    if reason == "not found":
        return InputError(f"{what} not found: {path}")
    return InputError(f"{what} {path} {reason}")
