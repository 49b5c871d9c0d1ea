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


def _umask() -> int:
    """The process umask, read without changing it (``os.umask`` would race other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def is_temp_name(name: str) -> bool:
    """True for the names :func:`atomic_output` gives its temporary files (``.stem.XXXX.part.ext``)."""
    return name.startswith(".") and ".part" in name


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dst``; rename to ``dst`` on success, delete it on failure.

    The temp file gets the permissions a plain ``open(dst, "w")`` would have given (mkstemp
    makes it 0600, which would leave outputs unreadable to anyone else). Error messages that
    name the temp file are rewritten to name ``dst``, the only name the user knows.
    """
    dst = Path(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{dst.stem}.", suffix=f".part{dst.suffix}")
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on the device while writing {dst}") from None
        raise OutputError(f"cannot write in {parent}: {exc.strerror}") from None
    tmp_path = Path(tmp)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError:  # pragma: no cover - e.g. file systems without modes
        pass
    os.close(fd)
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
    except OutputError as exc:
        tmp_path.unlink(missing_ok=True)
        text = str(exc)
        if tmp_path.name in text or str(tmp_path) in text:
            raise OutputError(text.replace(str(tmp_path), str(dst)).replace(tmp_path.name, dst.name)) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
