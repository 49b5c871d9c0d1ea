"""Cached files the server hands to browsers, verified: recorded when fetched, checked when the
server starts, and checked again (cheaply) each time one is opened to be served.

Why: the cache is a folder on disk, and the runtime in it runs in every visitor's page. Before
this, a file edited after it was fetched was served as it was, a link in the cache was followed
(a link to a file outside it was served), and ``backdrop models`` called such a cache
``[cached]``. Now:

- **Recorded at fetch**: the size and sha256 of every file, in a manifest beside the files
  (:func:`write_manifest`), written before the entry's completion marker.
- **Checked at start**: every file is opened (:func:`open_inside`: never through a link, only a
  regular file) and its size and sha256 compared with the record (:func:`verify`). A mismatch is
  one line (:class:`CacheError`): the entry is fetched again, or refused.
- **Checked before serving**: :meth:`VerifiedFile.open` opens the file the same way and compares
  its identity (device, inode, size, modification and change times, from ``fstat`` of the open
  file, so nothing can be swapped in between) with the one that was hashed; only if it changed
  is the file hashed again, from the same open file. A changed file is refused, not served;
  the file that was checked is the one sent (:func:`file_response`: never opened again by path).

What this is not: the manifest lives in the cache, so whoever can write the cache can rewrite
the manifest too. The tarball's integrity is checked against the string pinned in
:mod:`.packages` at fetch; after that the cache is trusted as much as the user's own files,
like the model files beside it (those are checked against sha256s pinned in the registry).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import ModelError

MANIFEST = ".files.json"  # sizes and sha256s recorded at fetch (the ".integrity" marker predates it)
MAX_MANIFEST = 1024 * 1024


class CacheError(ModelError):
    """A cached file is missing, is a link or not a regular file, or is not what was recorded."""


def open_inside(root: Path, rel: str) -> int:
    """A read-only descriptor of ``root/rel``, never through a symbolic link below ``root`` (each
    folder and the file are opened with ``O_NOFOLLOW``) and only a regular file (a FIFO or a
    device is refused without blocking on it)."""
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise CacheError(f"{rel!r} is not a path inside the cache")
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(root, flags | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise CacheError(f"cannot open {root}: {exc.strerror or exc}") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            mode = flags | nofollow | (getattr(os, "O_NONBLOCK", 0) if last else getattr(os, "O_DIRECTORY", 0))
            try:
                nfd = os.open(part, mode, dir_fd=fd)
            except OSError as exc:
                if os.path.islink(os.path.join(root, *parts[: i + 1])):  # ELOOP, or ENOTDIR for a folder
                    raise CacheError(f"{rel} is a link in the cache (links are never followed)") from None
                raise CacheError(f"{rel}: {exc.strerror or exc}") from None
            os.close(fd)
            fd = nfd
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CacheError(f"{rel} is not a regular file")
        os.set_blocking(fd, True)
        out, fd = fd, -1
        return out
    finally:
        if fd >= 0:
            os.close(fd)


def _identity(st: os.stat_result) -> tuple:
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _sha256(f: BinaryIO) -> str:
    f.seek(0)
    digest = hashlib.file_digest(f, "sha256").hexdigest()
    f.seek(0)
    return digest


@dataclass
class VerifiedFile:
    """One cached file and its record (size, sha256); ``open()`` serves it only while it matches."""

    root: Path
    rel: str
    size: int
    sha256: str
    _seen: tuple | None = field(default=None, repr=False)  # the identity that was last hashed

    def open(self) -> BinaryIO:
        """The file, open for reading, if it is still what was recorded; else :class:`CacheError`."""
        f = os.fdopen(open_inside(self.root, self.rel), "rb")
        try:
            ident = _identity(os.fstat(f.fileno()))
            if ident != self._seen:  # new, or changed since it was hashed: hash what was opened
                if ident[2] != self.size:
                    raise CacheError(f"{self.rel} is {ident[2]} bytes, {self.size} were fetched")
                if _sha256(f) != self.sha256:
                    raise CacheError(f"{self.rel} changed since it was fetched (its sha256 differs)")
                self._seen = ident
            return f
        except BaseException:
            f.close()
            raise

    def problem(self) -> str | None:
        """None while the file is as recorded, else why not (one line)."""
        try:
            self.open().close()
        except CacheError as exc:
            return str(exc)
        return None


def verify_pinned(root: Path, rel: str, sha256: str) -> VerifiedFile:
    """``root/rel`` checked against a sha256 pinned in the source (a model of the registry)."""
    try:
        with os.fdopen(open_inside(root, rel), "rb") as f:
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise CacheError(f"{rel}: {exc.strerror or exc}") from None
    vf = VerifiedFile(root, rel, size, sha256)
    why = vf.problem()
    if why:
        raise CacheError(why)
    return vf


def record(data: bytes) -> dict:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def write_manifest(folder: Path, identity: str, files: dict[str, dict]) -> None:
    """Record ``files`` (``{rel: {"size", "sha256"}}``) for the entry ``identity`` (for an npm
    package, its pinned integrity string)."""
    (folder / MANIFEST).write_text(json.dumps({"identity": identity, "files": files}, indent=1, sort_keys=True))


def verify(folder: Path, identity: str, names) -> dict[str, VerifiedFile]:
    """Every file of ``names`` in ``folder`` (a folder of the cache: itself no link either),
    checked against the manifest; :class:`CacheError` (one line) for the first that is missing,
    a link, or not what was recorded. Keys are the names; each opens as ``folder.name/name``
    from the cache's root."""
    root, top = folder.parent, folder.name
    if not os.path.lexists(folder / MANIFEST):
        raise CacheError("no sizes and hashes were recorded when it was fetched")
    try:
        with os.fdopen(open_inside(root, f"{top}/{MANIFEST}"), "rb") as f:
            manifest = json.loads(f.read(MAX_MANIFEST + 1)[:MAX_MANIFEST])
        files = manifest["files"]
        if manifest["identity"] != identity:
            raise CacheError("it was fetched for another version")
        out = {rel: VerifiedFile(root, f"{top}/{rel}", int(files[rel]["size"]), str(files[rel]["sha256"]))
               for rel in names}
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CacheError(f"its {MANIFEST} is damaged or lacks a file") from None
    for vf in out.values():
        why = vf.problem()
        if why:
            raise CacheError(why)
    return out


@functools.lru_cache(maxsize=1)
def file_response():
    """A response that sends an already opened (and verified) file in 64 KB chunks, after the
    handler has returned, as aiohttp's FileResponse does (so a client that does not read is a
    connection whose response is being written: the connection cap may evict it). Not
    FileResponse: that opens the file again by path (following links), and its ``sendfile``,
    cut by an eviction, makes Python 3.11's asyncio log an ``InvalidStateError`` traceback."""
    from aiohttp import web

    class OpenFileResponse(web.StreamResponse):
        def __init__(self, fobj, size: int, headers: dict[str, str]):
            super().__init__(status=200, headers=headers)
            self._fobj = fobj
            self.content_length = size

        async def prepare(self, request):
            try:
                writer = await super().prepare(request)
                if request.method != "HEAD":
                    while chunk := self._fobj.read(64 * 1024):  # from the page cache: verified at start
                        await self.write(chunk)
                return writer
            finally:
                self._fobj.close()

    return OpenFileResponse
