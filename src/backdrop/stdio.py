"""Standard streams for the command line: a broken stderr never fails a job, a lost stdout result
is one error line.

Why: ``backdrop image a.png b.png 2>/dev/full`` wrote ``b.png`` and then exited 1, because the
final "wrote b.png" message raised ENOSPC; a message is a courtesy, the job had succeeded. On
stdout the data *is* the result (``bench --json``, ``eval --json``): losing it is an output
error, one line and exit 2 like a full disk anywhere else, not a traceback.

After a failed write the stream's file descriptor is pointed at ``/dev/null``, so the data
still buffered cannot fail the interpreter's final flush (exit 120) either.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

from .errors import OutputError


class _Guarded:
    """A text stream whose write and flush failures are handled once, then silenced."""

    def __init__(self, stream: Any, name: str):
        self._stream = stream
        self._name = name
        self.failed: BaseException | None = None

    def _lost(self, exc: BaseException) -> None:
        first = self.failed is None
        self.failed = exc
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._stream.fileno())
            finally:
                os.close(null)
        if self._name == "stdout" and first:
            if isinstance(exc, BrokenPipeError):
                raise exc  # the reader went away (``| head``): the CLI exits 1 quietly
            reason = getattr(exc, "strerror", None) or str(exc)
            raise OutputError(f"cannot write to standard output: {reason}") from None

    def write(self, text: str) -> int:
        if self.failed is not None:
            return len(text)
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as exc:
            self._lost(exc)
            return len(text)

    def flush(self) -> None:
        if self.failed is not None:
            return
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._lost(exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_streams():
    """Within the block, ``sys.stdout`` and ``sys.stderr`` are guarded (see the module); the
    originals are back afterwards. Flush stdout inside the block to learn that the result was lost."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Guarded(saved[0], "stdout"), _Guarded(saved[1], "stderr")
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
