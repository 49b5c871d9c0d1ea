"""Overlap decoding, processing and encoding on separate threads.

A file job done in one thread runs decode -> matte -> composite -> encode strictly in turn, so
at most one of them uses the CPU at a time. FFmpeg's decoders and encoders, OpenCV and LiteRT
release the GIL, so a reader thread that decodes ahead and a writer thread that encodes behind
let the three overlap on a multi-core CPU. Queues are bounded (a few frames), so memory stays
flat; errors in either thread are re-raised in the caller's thread; closing stops the threads.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import STOP_SIGNALS, signals_deferred

_END = object()


def _get(q: queue.Queue) -> Any:
    """``q.get()`` for the main thread, safe against a signal arriving while it holds the
    queue's lock (see :class:`~backdrop.errors.signals_deferred`)."""
    while True:
        with signals_deferred():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                pass


def _put(q: queue.Queue, item: Any) -> None:
    if threading.current_thread() is not threading.main_thread():  # signals reach only the main one
        q.put(item)
        return
    while True:
        with signals_deferred():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                pass


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc




def start_thread(thread: threading.Thread) -> None:
    """``thread.start()`` with the stop signals held back by the kernel until it has returned.

    A Ctrl-C that lands inside ``Thread.start`` (it waits for the new thread to run) raises out
    of it after the thread was created: the caller never learns it has a thread to stop, and
    that decoder went on reading from a container the main thread then closed, a SIGSEGV seen in
    CI (``test_stop_in_the_first_second_never_crashes``). Blocked, the signal stays pending and its
    handler runs right after this call, where the caller's cleanup already covers the thread.
    Threads inherit the mask, so the worker (and FFmpeg's threads it starts) never take a stop
    signal; the main thread, which handles them, gets it back. Only the main thread may block
    (``pthread_sigmask`` acts on the calling thread alone).
    """
    if threading.current_thread() is not threading.main_thread():
        thread.start()
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def join_fully(thread: threading.Thread, finished: threading.Event,
               step: Callable[[], None] | None = None) -> None:
    """Wait until ``thread`` has ended, even when a signal (Ctrl-C, SIGTERM) interrupts the wait.

    Closing a container while another thread still decodes from or encodes into it crashes
    FFmpeg (SIGSEGV), so every exit path must get past this wait. ``finished`` is set by the
    thread as its very last act: ``Thread.join`` itself cannot be trusted here, because on
    Python 3.11 an exception raised by a signal handler inside ``join`` can mark a running
    thread as stopped (``is_alive()`` false while it still runs). ``step`` runs between waits
    (draining a queue the thread may be blocked on). The first interruption is re-raised once
    the thread is done.
    """
    pending: BaseException | None = None
    while not finished.is_set() and (thread.ident is not None):
        try:
            with signals_deferred():
                if step is not None:
                    step()
                finished.wait(0.05)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            pending = pending or exc
    if pending is not None:
        raise pending


def prefetch(items: Iterable[Any], depth: int = 4) -> Iterator[Any]:
    """Iterate ``items`` on a background thread, up to ``depth`` items ahead.

    The source iterator is closed on the worker thread itself (a reader's ``finally`` that
    closes its container runs there, never concurrently with a decode), and the worker is
    joined before this generator finishes, whatever ends it.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    finished = threading.Event()

    def work() -> None:
        it = None
        try:
            it = iter(items)
            for item in it:
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
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException:  # noqa: BLE001 - the consumer has its own error
                    pass
            finished.set()

    t = threading.Thread(target=work, name="backdrop-prefetch", daemon=True)
    try:
        start_thread(t)
        while True:
            item = _get(q)
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()

        def drain() -> None:
            try:
                q.get_nowait()
            except queue.Empty:
                pass

        join_fully(t, finished, drain)


class BackgroundWriter:
    """Calls ``write(*args)`` on a worker thread, at most ``depth`` calls behind."""

    def __init__(self, write: Callable[..., None], depth: int = 4):
        self._write = write
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backdrop-writer", daemon=True)
        try:
            start_thread(self._thread)
        except BaseException:  # a stop right after the start: the caller gets no writer to close
            if self._thread.ident is not None:
                self.close()
            raise

    def _run(self) -> None:
        try:
            while True:
                args = self._q.get()
                if args is _END:
                    return
                if self._error is None:
                    try:
                        self._write(*args)
                    except BaseException as exc:
                        self._error = exc
                args = None  # not kept alive while waiting for the next (a 4K frame is 12 MB)
        finally:
            self._finished.set()

    def write(self, *args: Any) -> None:
        if self._error is not None:
            raise self._error
        _put(self._q, args)

    def close(self) -> None:
        """Wait for every queued write; re-raise the first error. A signal during the wait
        does not cut it short (the encoder must be idle before anyone closes the file)."""
        sent = False

        def send_end() -> None:
            nonlocal sent
            if not sent:
                try:
                    self._q.put(_END, timeout=0.05)
                    sent = True
                except queue.Full:
                    pass

        join_fully(self._thread, self._finished, send_end)
        if self._error is not None:
            raise self._error


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: threads of an overlapped file job besides the one OpenCV's pool serves: the decoder, the
#: encoder and the other stage thread (``io/transcode.py``)
OTHER_JOB_THREADS = 3


class _OpenCVPool:
    """Who holds OpenCV's pool cut (:func:`opencv_pool_shared`), and its size before the first."""

    lock = threading.Lock()
    jobs = 0
    threads_before = 0


@contextmanager
def opencv_pool_shared() -> Iterator[None]:
    """OpenCV's own thread pool cut to the cores an overlapped file job leaves it, for the job.

    The job already keeps every core busy with its own threads, so OpenCV splitting each resize
    and filter over all cores only adds hand-offs that compete with them. Measured with
    ``backdrop bench`` on office-desk, 2 cores, image background, rounds alternating with the
    default pool: 720p ratio 0.48/0.48/0.46 -> 0.51/0.51/0.49 (load 1.3-1.9); the 720x1280
    portrait (0.55/0.51 -> 0.53/0.51), 1080p (0.74/0.69 -> 0.70/0.70) and 4K (1.07/1.04 ->
    1.05/1.01) the same within the noise of load 2.3-3.3; RVM at 720p 13.7 -> 14.6 frames/s.
    Process-wide (OpenCV has one pool): counted, so concurrent jobs restore it once, last.
    """
    import cv2

    pool = _OpenCVPool
    with signals_deferred(), pool.lock:
        if pool.jobs == 0:
            pool.threads_before = cv2.getNumThreads()
            cv2.setNumThreads(max(1, usable_cpus() - OTHER_JOB_THREADS))
        pool.jobs += 1
    try:
        yield
    finally:
        with signals_deferred(), pool.lock:
            pool.jobs -= 1
            if pool.jobs == 0:
                cv2.setNumThreads(pool.threads_before)


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
