"""Background uploads over the data channel: announced, size-capped, sniffed, kept server-side.

A publisher sends an ``upload`` header (size, MIME type, display name) and then binary chunks.
Nothing is allocated beyond the announced size and the limit, the content is sniffed and
decoded regardless of the declared type, and the file is stored in the peer's temp dir under a
server-chosen name: the client's file name is only ever displayed.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from ..errors import BackdropError
from .config import MAX_UPLOADS_PER_PEER, UPLOAD_TYPES
from .protocol import ClientError, one_line


def safe_display_name(name: Any) -> str:
    """A client-supplied file name reduced to something safe to *show* (never used as a path)."""
    if not isinstance(name, str):
        return "upload"
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")[:80]
    return base or "upload"


def sniff_upload(data: bytes) -> tuple[str, str] | None:
    """(kind, suffix) from the first bytes of an upload, or None when it is no allowed type."""
    if data[:3] == b"\xff\xd8\xff":
        return "image", ".jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image", ".png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image", ".webp"
    if data[4:8] == b"ftyp":
        return "video", ".mp4"
    if data[:4] == b"\x1a\x45\xdf\xa3":
        return "video", ".webm"
    return None


class UploadReceiver:
    """The upload half of a :class:`~backdrop.web.publisher.PublisherPeer` (a mixin).

    Uses the peer's ``links`` (its settings), ``upload_dir``, ``uploads``, ``_upload``, ``_upload_seq``,
    ``apply`` and ``send``.
    """

    _scaled = None

    def _upload_begin(self, msg: dict[str, Any]) -> None:
        limit = self.links.config.max_upload_bytes
        size = msg.get("size")
        mime = msg.get("mime")
        name = safe_display_name(msg.get("name"))
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise ClientError('upload needs "size": the number of bytes that follow')
        if size > limit:
            raise ClientError(f"upload too large: {size} bytes, the limit is {limit} bytes")
        if mime not in UPLOAD_TYPES:
            raise ClientError(f"upload type {str(mime)[:40]!r} not allowed: use JPEG, PNG, WebP, MP4 or WebM")
        self._upload = {"size": size, "name": name, "data": bytearray(), "t": time.monotonic()}

    async def _upload_chunk(self, chunk: bytes) -> None:
        up = self._upload
        if up is None:
            raise ClientError('binary data without an "upload" message first')
        if len(up["data"]) + len(chunk) > up["size"]:
            self._upload = None
            raise ClientError(f"upload of {up['name']} is longer than the announced {up['size']} bytes")
        up["data"] += chunk
        up["t"] = time.monotonic()
        if len(up["data"]) == up["size"]:
            self._upload = None
            await self._upload_finish(up["name"], bytes(up["data"]))

    async def _upload_finish(self, name: str, data: bytes) -> None:
        sniffed = sniff_upload(data)
        if sniffed is None:
            raise ClientError(f"{name} is not a JPEG, PNG, WebP, MP4 or WebM file")
        kind, suffix = sniffed
        self._upload_seq += 1
        upload_id = f"upload:{self._upload_seq}"
        # the server chooses the name; the client's name is only ever displayed
        path = self.upload_dir / f"upload-{self._upload_seq}{suffix}"
        size = len(data)
        try:
            path = await asyncio.get_running_loop().run_in_executor(None, self._store, path, kind, data)
        except Exception as exc:
            for p in self.upload_dir.glob(f"upload-{self._upload_seq}*"):
                p.unlink(missing_ok=True)
            raise ClientError(f"{name} is not a usable image or video ({type(exc).__name__})") from None
        self.uploads[upload_id] = path
        try:
            await self.apply({"background": upload_id, "effect": True})
        except BaseException as exc:
            self.uploads.pop(upload_id, None)
            path.unlink(missing_ok=True)
            if isinstance(exc, BackdropError):  # say why, but never show the server's paths
                reason = one_line(exc).replace(str(path), name).replace(str(self.upload_dir), "")
                raise ClientError(f"{name} is not a usable image or video ({reason})") from None
            raise
        self._prune_uploads(keep=upload_id)
        self.send({"type": "uploaded", "id": upload_id, "name": name, "kind": kind, "bytes": size,
                   **({"scaled": list(self._scaled)} if self._scaled else {})})

    def _store(self, path, kind: str, data: bytes):
        """Write the upload; one larger than a frame is scaled down first (8K costs the peer its
        frame rate and hundreds of MB per frame otherwise). Runs on a worker thread."""
        from .shrink import shrink_image, shrink_video

        side = self.links.config.upload_max_side
        self._scaled = None
        if kind == "image":
            small = shrink_image(data, side)
            if small is not None:
                data, suffix, self._scaled = small
                path = path.with_suffix(suffix)
            path.write_bytes(data)
            return path
        path.write_bytes(data)
        self._scaled = shrink_video(path, side)
        return path.with_suffix(".mp4") if self._scaled else path

    def _prune_uploads(self, keep: str) -> None:
        while len(self.uploads) > MAX_UPLOADS_PER_PEER:
            oldest = next(k for k in self.uploads if k != keep)
            self.uploads.pop(oldest).unlink(missing_ok=True)
