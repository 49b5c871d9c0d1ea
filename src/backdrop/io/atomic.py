"""Outputs appear complete or not at all.

Writers write to a temporary file in the destination folder (same suffix, so format guessing
works) and rename it over the destination only when everything was written. On any error,
including Ctrl-C and SIGTERM, the temporary file is removed. Inputs are never opened for writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def check_output_path(dst: Path, *inputs: Path) -> Path:
    """Refuse an output equal to an input, a missing or unwritable output folder, or a folder."""
    dst = Path(dst).expanduser()
    for src in inputs:
        src = Path(src).expanduser()
        same = False
        try:
            same = dst.exists() and os.path.samefile(src, dst)
        except OSError:
            same = False
        if same or dst.resolve() == src.resolve():
            raise OutputError(f"output {dst} is the same file as the input; choose another name")
    parent = dst.parent if str(dst.parent) else Path(".")
    if dst.is_dir():
        raise OutputError(f"output {dst} is a folder; give a file name")
    if not parent.is_dir():
        raise OutputError(f"output folder does not exist: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {parent}")
    return dst


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dst``; rename to ``dst`` on success, delete it on failure."""
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{dst.stem}.", suffix=f".part{dst.suffix}")
    except OSError as exc:
        raise OutputError(f"cannot write in {parent}: {exc.strerror}") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dst)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on the device while writing {dst}") from None
        if isinstance(exc, PermissionError):
            raise OutputError(f"permission denied writing {dst}") from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
