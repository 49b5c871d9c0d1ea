"""The batch manifest: which outputs are finished, made from which input bytes and settings.

A JSON-lines file in the output folder, appended to by the driver only (one writer, so no
locking between records is needed; a second batch on the same folder is refused by
:func:`batch_lock`). Each finished output gets one record carrying the sha256 of the input it
was made from and a hash of every setting that changes the result. A rerun skips an input when
the last record for its output says ``done`` with the same input hash and settings hash and
the output file is still there with the recorded size and sha256 (size first, the hash only
when the size matches); anything else is redone. Records are
written after the output was renamed into place, so a crash between the two only costs redoing
that one file (the rename is atomic and the redo overwrites it with the same content): outputs
are produced exactly once in effect.

A line that is not a record (torn by a driver killed mid-append, or any damage: binary
garbage, NUL bytes, invalid UTF-8) is skipped with one warning per read, never an error; the
output it described is then simply redone. An append after a torn last line starts a new line,
so the torn bytes never swallow the next record.

The manifest and the lock are opened without following links and must be plain files with one
name: a symlink (``.backdrop-manifest.jsonl -> ~/.bashrc``) or a hard link made in the output
folder would otherwise have the batch append its records to a file outside it. Such a name is
refused with one line before anything is processed; the other file is never opened for writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import OutputError
from ..hashing import sha256_file
from ..io.atomic import check_target

log = logging.getLogger(__name__)

MANIFEST_NAME = ".backdrop-manifest.jsonl"
LOCK_NAME = ".backdrop-batch.lock"
WORK_NAME = ".backdrop-work"
FORMAT_VERSION = 1


def settings_hash(settings: dict[str, Any]) -> str:
    """A stable hash of the settings that decide an output's content (JSON, sorted keys)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Manifest:
    """Read and append the manifest of one output folder."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST_NAME
        self.last: dict[str, dict[str, Any]] = {}
        self.load()

    def load(self) -> None:
        self.last = {}
        check_target(self.path)  # a pipe or device of that name: refused, never read or appended to
        try:
            fd = own_file(self.path, os.O_RDONLY, "the batch manifest")
            with open(fd, "rb") as f:  # bytes: a damaged line must not stop the decoder
                data = f.read()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise OutputError(f"cannot read the batch manifest {self.path}: {exc.strerror}") from None
        bad = 0
        for raw in data.split(b"\n"):
            if not raw.strip():
                continue
            rec = _parse(raw)
            if rec is None:
                bad += 1
            else:
                self.last[rec["output"]] = rec
        if bad:
            log.warning("ignored %d damaged line%s in the batch manifest %s (an output whose record was lost "
                        "is redone)", bad, "" if bad == 1 else "s", self.path)

    def is_done(self, output_rel: str, input_sha256: str, settings: str, output_path: Path) -> bool:
        """True when the last record says ``done`` from these input bytes and settings and the
        output still has the recorded size and sha256 (the hash is only read when the size fits)."""
        rec = self.last.get(output_rel)
        if not rec or rec.get("status") != "done":
            return False
        if rec.get("input_sha256") != input_sha256 or rec.get("settings") != settings:
            return False
        want = rec.get("output_sha256")
        if not isinstance(want, str) or not want:
            return False  # a record without the output's hash cannot prove anything
        try:
            if not output_path.is_file() or output_path.stat().st_size != rec.get("output_size"):
                return False
            return sha256_file(output_path) == want
        except OSError:
            return False

    def append(self, record: dict[str, Any]) -> None:
        """Append one record durably (single write with O_APPEND, then fsync)."""
        rec = {"v": FORMAT_VERSION, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **record}
        data = (json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            fd = own_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, "the batch manifest")
            try:
                if _ends_torn(fd):
                    data = b"\n" + data  # never glue a record onto a torn line
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the batch manifest {self.path}: {exc.strerror}") from None
        if isinstance(rec.get("output"), str):
            self.last[rec["output"]] = rec


def own_file(path: Path, flags: int, what: str) -> int:
    """``os.open`` that refuses a link: a symlink (``O_NOFOLLOW``), a hard link (more than one
    name) or anything but a regular file raises one line and leaves the other file untouched."""
    try:
        fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError:
        if path.is_symlink():  # ELOOP from O_NOFOLLOW
            raise OutputError(f"{what} {path} is a symbolic link; batch writes only its own files "
                              "(remove the link)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{what} {path} is not a regular file; remove it")
        if st.st_nlink > 1:
            raise OutputError(f"{what} {path} has {st.st_nlink - 1} other hard link(s); batch writes only "
                              "its own files (remove it)")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _parse(raw: bytes) -> dict[str, Any] | None:
    """One manifest line as a record, or None when it is damaged in any way."""
    try:
        rec = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("output"), str) or not rec["output"]:
        return None
    return rec


def _ends_torn(fd: int) -> bool:
    """True when the file is not empty and its last byte is not a newline."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


@contextlib.contextmanager
def batch_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``out_dir`` for one batch; refuse if another batch holds it."""
    path = Path(out_dir) / LOCK_NAME
    check_target(path)
    try:
        fd = own_file(path, os.O_CREAT | os.O_RDWR, "the batch lock")
    except OSError as exc:
        raise OutputError(f"cannot write in the output folder {out_dir}: {exc.strerror}") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(f"another backdrop batch is writing to {out_dir}; wait for it or choose "
                              "another output folder") from None
        except (ImportError, OSError):  # pragma: no cover - no flock on this file system
            pass
        yield
    finally:
        os.close(fd)
