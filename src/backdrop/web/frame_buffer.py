"""The memory a frame worker and its server share: one frame in, one composite out, so a frame
crosses between the two processes as one copy each way instead of through a socket.

Why: a 512x480 RGB frame is 0.7 MB. Sent through the worker's pipe (a socketpair), the server's
frame thread spent ~0.9 ms of CPU a frame in the write alone (py-spy of the server with one peer,
2026-12-07), on the same two cores the pipeline needs. Here the server copies the frame into the
shared area, sends only its shape, and copies the composite out when the child says it is there:
the server's CPU a frame went from 1.0-1.5 to 0.45-0.52 ms (240 frames of talking-room through a
worker, two runs each in turns; docs/reliability.md). A frame that does not fit goes through the
pipe as before. One frame is in flight at a time (the peer's single frame thread waits for
each answer), so neither side ever writes what the other is reading.

The area is a file in ``/dev/shm`` (memory; the temp dir where there is none) mapped by both
processes and unlinked as soon as the child has mapped it, so nothing is left behind however the
server ends. It is written out in full when it is made: a page of a sparse file that cannot be
had later (``/dev/shm`` full, a container's is 64 MB) is a SIGBUS that kills the server, where a
full folder at the start only means the pipe carries the frames. That is 5.3 MB a stream, so the
area holds frames up to 1280x720 (webcams' usual most); larger ones go through the pipe.
"""

from __future__ import annotations

import mmap
import os
import tempfile

import numpy as np

FRAME_BYTES = 1280 * 720 * 3  # each way: up to a 1280x720 RGB frame goes through shared memory
CHUNK = 1 << 20               # the area is written out in pieces this big
FRAME, COMPOSITE = 0, 1       # the two areas: the server writes the frame, the child the composite


class SharedFrames:
    """A frame area (``FRAME_BYTES``) and a composite area after it, in one mapping."""

    def __init__(self, path: str, mapping: mmap.mmap) -> None:
        self.path = path
        self._map = mapping

    @classmethod
    def create(cls, folder: str | None = None) -> "SharedFrames | None":
        """A new area in ``folder`` (default: ``/dev/shm``, else the temp dir), or None where
        none can be had (the pipe carries every frame then)."""
        if folder is None and os.path.isdir("/dev/shm"):
            folder = "/dev/shm"
        try:
            fd, path = tempfile.mkstemp(prefix="backdrop-frames-", dir=folder)
        except OSError:
            return None
        try:
            zeros = bytes(CHUNK)
            for offset in range(0, 2 * FRAME_BYTES, CHUNK):  # every page had now, or refused now
                n = min(CHUNK, 2 * FRAME_BYTES - offset)
                if os.pwrite(fd, zeros[:n], offset) != n:
                    raise OSError("short write")
            return cls(path, mmap.mmap(fd, 2 * FRAME_BYTES))
        except OSError:
            os.unlink(path)
            return None
        finally:
            os.close(fd)

    @classmethod
    def attach(cls, path: str | None) -> "SharedFrames | None":
        """The child's side: map the area the server made (None: frames come through the pipe)."""
        if path is None:
            return None
        fd = os.open(path, os.O_RDWR)
        try:
            return cls(path, mmap.mmap(fd, 2 * FRAME_BYTES))
        finally:
            os.close(fd)

    def unlink(self) -> None:
        """Remove the file; both mappings stay (called once the child has mapped it)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    @staticmethod
    def fits(shape: tuple[int, ...]) -> bool:
        return int(np.prod(shape, dtype=np.int64)) <= FRAME_BYTES

    def _area(self, which: int, shape: tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(shape, dtype=np.int64))
        return np.frombuffer(self._map, np.uint8, n, which * FRAME_BYTES).reshape(shape)

    def put(self, which: int, image: np.ndarray) -> None:
        """Copy ``image`` (uint8, ``fits``) into area ``which`` (``FRAME`` or ``COMPOSITE``)."""
        self._area(which, image.shape)[...] = image

    def take(self, which: int, shape: tuple[int, ...]) -> np.ndarray:
        """A copy of what area ``which`` holds (the caller may keep it: the area is reused)."""
        return self._area(which, shape).copy()

    def close(self) -> None:
        try:
            self._map.close()
        except BufferError:  # a view still exported: the mapping goes with the process
            pass
