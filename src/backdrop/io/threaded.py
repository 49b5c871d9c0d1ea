"""Overlap decoding, processing and encoding on separate threads.

A file job done in one thread runs decode -> matte -> composite -> encode strictly in turn, so
at most one of them uses the CPU at a time. FFmpeg's decoders and encoders, OpenCV and LiteRT
release the GIL, so a reader thread that decodes ahead and a writer thread that encodes behind
let the three overlap on a multi-core CPU. Queues are bounded (a few frames), so memory stays
flat; errors in either thread are re-raised in the caller's thread; closing stops the threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

_END = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``items`` on a background thread, up to ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer
            q.put(_Failure(exc))

    t = threading.Thread(target=work, name="backdrop-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(timeout=0.05)


class BackgroundWriter:
    """Calls ``write(*args)`` on a worker thread, at most ``depth`` calls behind."""

    def __init__(self, write: Callable[..., None], depth: int = 4):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="backdrop-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            args = self._q.get()
            if args is _END:
                return
            if self._error is None:
                try:
                    self._write(*args)
                except BaseException as exc:
                    self._error = exc

    def write(self, *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(args)

    def close(self) -> None:
        """Wait for every queued write; re-raise the first error."""
        self._q.put(_END)
        self._thread.join()
        if self._error is not None:
            raise self._error


class Poller:
    """Calls :meth:`poll` now and then every ``interval`` seconds on a daemon thread.

    For checks too slow for every frame (scanning /proc, stat-ing a config file). Subclasses
    implement ``poll``; ``start`` runs it once in the caller's thread first, so the state is
    known before the first frame; ``close`` stops the thread within one interval.
    """

    name = "backdrop-poller"

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def poll(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def start(self):
        self.poll()
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
