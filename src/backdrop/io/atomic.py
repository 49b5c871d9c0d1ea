"""Outputs appear complete or not at all.

Writers write to a temporary file in the destination folder (same suffix, so format guessing
works) and rename it over the destination only when everything was written. On any error,
including Ctrl-C and SIGTERM, the temporary file is removed. Inputs are never opened for writing.

Outputs go only to a new name or over a regular file (:func:`check_target`, checked before the
work and again at the rename): renaming over a device node, a named pipe or a socket destroyed
it (as root, ``/dev/full`` itself), and a pipe's reader never gets the data anyway.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file" if stat.S_ISREG(mode) else "not a regular file"


def check_target(dst: Path) -> None:
    """Refuse an output name that exists and is not a regular file: one line, nothing replaced.

    A device (``/dev/full``, a node with a video suffix), a named pipe or a socket would be
    replaced by the rename, so it is refused; a link is judged by what it points to. ``-`` is
    refused too: an output is complete or absent, which a pipe cannot be (a reader would get
    half a file from a failed job, and MP4 must seek back to finish).
    """
    if str(dst) == "-":
        raise OutputError("output '-' (standard output) is not supported: give a file name")
    try:
        mode = os.stat(dst).st_mode
    except OSError:
        return  # a new name (or a dangling link, replaced by the rename as a new file)
    if not stat.S_ISREG(mode):
        raise OutputError(f"output {dst} is {_kind(mode)}: outputs go only to a regular file or a new name")


def check_output_path(dst: Path, *inputs: Path) -> Path:
    """Refuse an output equal to an input, a missing or unwritable output folder, a folder, or
    anything else that is not a regular file (:func:`check_target`)."""
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
    check_target(dst)
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


#: exactly the names ``tempfile.mkstemp(prefix=".stem.", suffix=".part.ext")`` makes: a dot,
#: the stem, a dot, 8 random characters from mkstemp's alphabet, ``.part`` and the suffix
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.part(\.[A-Za-z0-9]{1,8})?$")
STALE_SECONDS = 3600.0


def _random8() -> str:
    """8 characters of mkstemp's alphabet, so names match :data:`_TEMP_NAME` as before."""
    return "".join(_RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789_") for _ in range(8))


_RNG = __import__("random").SystemRandom()


def is_own_temp_name(name: str) -> bool:
    """True only for names :func:`atomic_output` makes (stricter than :func:`is_temp_name`)."""
    return bool(_TEMP_NAME.match(name))


def remove_stale_temps(folder: Path, older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove temp files a killed run (SIGKILL, power loss) left in ``folder``.

    Only files named exactly as :func:`atomic_output` names them, older than ``older_than``
    seconds and not locked by a live writer (every writer holds an ``flock`` on its temp file)
    are removed; anything else is never touched. Returns what was removed; errors are ignored.
    """
    removed: list[Path] = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        if not is_own_temp_name(e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if not e.is_file(follow_symlinks=False) or now - st.st_mtime < older_than:
                continue
            fd = os.open(e.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live process is writing it
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed.append(Path(e.path))
        finally:
            os.close(fd)
    return removed


#: temp files being written: temp path -> (open fd, destination); see :func:`check_written`
_WRITING: dict[str, tuple[int, Path]] = {}


def open_temp(dst: Path) -> tuple[Path, int]:
    """Create ``dst``'s hidden temp file beside it; return (path, fd). The caller closes the fd.

    The file gets the permissions a plain ``open(dst, "w")`` would have given (0666 less the
    umask; mkstemp's 0600 would leave outputs unreadable to anyone else), and holds an
    ``flock`` while the fd is open, which marks it as live for :func:`remove_stale_temps`.
    Failures are one-line output errors.
    """
    dst = Path(dst)
    check_target(dst)
    parent = dst.parent if str(dst.parent) else Path(".")
    remove_stale_temps(parent)
    tmp_path: Path | None = None
    fd = -1
    try:
        # the name is chosen before the file exists, so a Ctrl-C at any point after the file was
        # created finds it in ``tmp_path`` and removes it (mkstemp could be interrupted between
        # creating the file and returning its name)
        for _ in range(100):
            tmp_path = parent / f".{dst.stem}.{_random8()}.part{dst.suffix}"
            try:
                fd = os.open(tmp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                             0o666 & ~_umask())
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover
            raise FileExistsError(errno.EEXIST, "no free temporary name")
        with contextlib.suppress(OSError):  # marks the file as live for remove_stale_temps
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        if tmp_path is not None and fd >= 0:
            tmp_path.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OutputError(f"no space left on the device while writing {dst}") from None
        if not parent.is_dir():
            raise OutputError(f"output folder {parent} was removed before {dst.name} could be written") from None
        raise OutputError(f"cannot write in {parent}: {exc.strerror}") from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
            if tmp_path is not None:
                tmp_path.unlink(missing_ok=True)
        raise
    _WRITING[str(tmp_path)] = (fd, dst)
    return tmp_path, fd


def _removed(tmp_path: Path, dst: Path) -> OutputError:
    parent = dst.parent if str(dst.parent) else Path(".")
    if not parent.is_dir():
        return OutputError(f"output folder {parent} was removed while writing {dst.name}")
    return OutputError(f"the temporary file for {dst} was removed while writing; nothing written")


def check_written(tmp_path: Path) -> None:
    """Raise a one-line :class:`OutputError` if ``tmp_path`` (a temp file from :func:`open_temp`
    still being written) was deleted, alone or with its folder.

    Writes to a deleted file still succeed on POSIX (the data goes to an inode nobody can reach),
    so without this a removed output folder is only noticed at the final rename, after all the
    work. One ``fstat`` of the open fd (its link count drops to 0): call it every few frames.
    """
    entry = _WRITING.get(str(tmp_path))
    if entry is None:
        return
    fd, dst = entry
    try:
        gone = os.fstat(fd).st_nlink == 0
    except OSError:
        return
    if gone:
        raise _removed(Path(tmp_path), dst)


def output_error(exc: OSError, dst: Path) -> OutputError:
    """The one-line error for an OSError met while writing ``dst`` (full disk, permissions, a
    folder or temp file removed under us, anything else)."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutputError(f"no space left on the device while writing {dst}")
    if isinstance(exc, PermissionError):
        return OutputError(f"permission denied writing {dst}")
    if isinstance(exc, FileNotFoundError):
        return OutputError(f"cannot write {dst}: the output folder or the temporary file was removed")
    return OutputError(f"cannot write {dst}: {exc.strerror or exc}")


def commit_temp(tmp_path: Path, dst: Path) -> None:
    """Rename a finished temp file over ``dst``; on failure a one-line output error, and the temp
    file removed."""
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        if not parent.is_dir() or not tmp_path.exists():
            raise _removed(tmp_path, dst)
        check_target(dst)  # made a pipe or a device node while we worked: still never replaced
        os.replace(tmp_path, dst)
    except OutputError:
        tmp_path.unlink(missing_ok=True)
        raise
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise output_error(exc, dst) from None


def close_temp(tmp_path: Path, fd: int) -> None:
    _WRITING.pop(str(tmp_path), None)
    with contextlib.suppress(OSError):
        os.close(fd)


@contextlib.contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """Yield a temp path beside ``dst``; rename to ``dst`` on success, delete it on failure.

    The temp file is made by :func:`open_temp` (normal permissions, locked while written).
    Error messages that name the temp file are rewritten to name ``dst``, the only name the user
    knows. Long writers call :func:`check_written` now and then, to stop at once when the
    output folder is deleted under them.
    """
    dst = Path(dst)
    tmp_path, fd = open_temp(dst)
    try:
        yield tmp_path
        commit_temp(tmp_path, dst)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        raise output_error(exc, dst) from None
    except OutputError as exc:
        tmp_path.unlink(missing_ok=True)
        text = str(exc)
        if tmp_path.name in text or str(tmp_path) in text:
            raise OutputError(text.replace(str(tmp_path), str(dst)).replace(tmp_path.name, dst.name)) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        close_temp(tmp_path, fd)


def make_folder(path: Path, what: str = "output folder") -> Path:
    """Create an output folder (and its parents), or say in one line why it cannot be one: a
    file, device or pipe of that name, a read-only parent, a full disk."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        try:
            kind = _kind(os.stat(path).st_mode)
        except OSError:
            kind = "not a folder"
        raise OutputError(f"{what} {path} is {kind}, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {path} is not writable")
    return path


def write_bytes(dst: Path, data: bytes | str) -> Path:
    """Write a small file (a report, a CSV, a checkpoint's bytes) through :func:`atomic_output`.

    The one way a writer without its own encoder puts a file down: the same target rule, the
    same temp file, the same one-line errors (a full disk included) and nothing left behind.
    """
    dst = Path(dst)
    with atomic_output(dst) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return dst
