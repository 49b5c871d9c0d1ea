"""Real-time scheduling: capture, processing and output in three stages with bounded queues.

A live source (a webcam) produces frames at its own pace whether or not anybody keeps up. If
the processing stage is slower than the camera, a plain FIFO grows without bound and every frame
comes out later than the one before: latency builds up second by second. Here each hand-over is
a :class:`DropOldestQueue` of a few slots; when it is full the *oldest* frame is thrown away, so
what is processed next is always the freshest frame and the delay stays at one processing time
plus at most ``queue_size`` frames. Frames that do get through keep their order (one thread per
stage, FIFO hand-overs), and every drop is counted.

The output stage runs in the caller's thread (:meth:`LiveLoop.run`), because preview windows
(OpenCV HighGUI, Tk) must be driven from the main thread on some platforms.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..io.threaded import start_thread
from ..stats import percentile, recent_fps

log = logging.getLogger(__name__)


class Closed(Exception):
    """Raised by :meth:`DropOldestQueue.get` once the queue is closed and drained."""


class Empty(Exception):
    """Raised by :meth:`DropOldestQueue.get` when the timeout passes with nothing to take."""


class DropOldestQueue:
    """A bounded FIFO whose ``put`` never blocks: when full, the oldest item is discarded.

    Never blocking the producer matters because the producer is a camera: blocking it would only
    move the backlog into the driver's buffers, where it turns into latency just the same.
    """

    def __init__(self, maxsize: int = 1, on_drop: Callable[[Any], None] | None = None):
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self._on_drop = on_drop

    def put(self, item: Any) -> Any | None:
        """Append ``item``; return the item dropped to make room (or None)."""
        dropped = None
        with self._cond:
            if self._closed:
                return item
            if len(self._items) >= self.maxsize:
                dropped = self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)
        return dropped

    def get(self, timeout: float | None = None) -> Any:
        """Oldest item; :class:`Empty` after ``timeout``; :class:`Closed` once closed and empty."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise Empty()
                self._cond.wait(remaining)
            return self._items.popleft()

    def close(self) -> None:
        """No more puts; ``get`` drains what is left and then raises :class:`Closed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


@dataclass
class LiveFrame:
    """One frame on its way through the loop, with the times that make up its latency."""

    seq: int
    t_capture: float
    image: np.ndarray
    output: np.ndarray | None = None
    t_processed: float = math.nan
    t_output: float = math.nan


class Source(Protocol):
    def read(self) -> np.ndarray | None: ...  # None: end of stream
    def close(self) -> None: ...


class Sink(Protocol):
    def write(self, image: np.ndarray, frame: LiveFrame) -> None: ...
    def close(self) -> None: ...


class LiveStats:
    """Counters and a sliding window of latencies; cheap to update, safe to read from any thread.

    Only the last ``window`` frames are kept, so a loop that runs for days uses constant memory.
    """

    def __init__(self, window: int = 600):
        self._lock = threading.Lock()
        self.captured = 0
        self.processed = 0
        self.output = 0
        self.paused = 0
        self.dropped_before_processing = 0
        self.dropped_before_output = 0
        self._latency = deque(maxlen=window)   # capture -> output, ms
        self._process = deque(maxlen=window)   # processing time, ms
        self._times = deque(maxlen=window)     # output times, for fps
        self.started = time.perf_counter()

    def record_output(self, frame: LiveFrame) -> None:
        with self._lock:
            self.output += 1
            self._latency.append((frame.t_output - frame.t_capture) * 1000.0)
            if not math.isnan(frame.t_processed):
                self._process.append(frame.t_processed)
            self._times.append(frame.t_output)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            lat = list(self._latency)
            proc = list(self._process)
            times = list(self._times)
            out = {
                "captured": self.captured, "processed": self.processed, "output": self.output,
                "paused": self.paused,
                "dropped_before_processing": self.dropped_before_processing,
                "dropped_before_output": self.dropped_before_output,
            }
        out["fps"] = round(recent_fps(times, window=2.0), 2)
        out["latency_ms_p50"] = percentile(lat, 50, ndigits=2)
        out["latency_ms_p95"] = percentile(lat, 95, ndigits=2)
        out["process_ms_p50"] = percentile(proc, 50, ndigits=2)
        out["seconds"] = round(time.perf_counter() - self.started, 2)
        return out

    def latencies_ms(self) -> list[float]:
        with self._lock:
            return list(self._latency)


def format_stats(s: dict[str, Any]) -> str:
    """One log line: fps, latency p50/p95, drops."""
    lat = (f"latency p50 {s['latency_ms_p50']:.0f} ms p95 {s['latency_ms_p95']:.0f} ms"
           if s.get("latency_ms_p50") is not None else "latency -")
    drops = s["dropped_before_processing"] + s["dropped_before_output"]
    paused = f", paused (no reader) {s['paused']}" if s.get("paused") else ""
    return f"{s['fps']:.1f} fps, {lat}, {s['output']} out, {drops} dropped{paused}"


class LiveLoop:
    """Camera -> processing -> sink, each in its own thread, joined by drop-oldest queues.

    ``source.read()`` returns the next RGB frame (blocking until the camera delivers) or None at
    the end of a file-backed source. ``process(image)`` returns the output frame. ``sink.write``
    gets every processed frame that was not dropped, in capture order. ``active()`` says whether
    anybody reads the output (None: cannot tell); while it returns False, no frame is processed
    (inference paused) and the last output is repeated once a second so the device stays alive.
    ``poll()``, when given, is called from the output thread about every 20 ms and may return
    False to stop (a preview window closed, the user pressed q).
    """

    def __init__(self, source: Source, process: Callable[[np.ndarray], np.ndarray], sink: Sink, *,
                 queue_size: int = 1, active: Callable[[], bool | None] | None = None,
                 poll: Callable[[], bool] | None = None, on_stats: Callable[[dict], None] | None = None,
                 stats_interval: float = 2.0, idle_repeat: float = 1.0):
        self.source = source
        self.process = process
        self.sink = sink
        self.active = active
        self.poll = poll
        self.on_stats = on_stats
        self.stats_interval = stats_interval
        self.idle_repeat = idle_repeat
        self.stats = LiveStats()
        self.q_in = DropOldestQueue(queue_size, on_drop=lambda f: self._count("dropped_before_processing"))
        self.q_out = DropOldestQueue(queue_size, on_drop=lambda f: self._count("dropped_before_output"))
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._last_output: LiveFrame | None = None

    def _count(self, name: str) -> None:
        with self.stats._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # -- stages ---------------------------------------------------------------------------------
    def _capture(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                image = self.source.read()
                if image is None:
                    break
                frame = LiveFrame(seq, time.perf_counter(), image)
                seq += 1
                with self.stats._lock:
                    self.stats.captured += 1
                self.q_in.put(frame)
        except BaseException as exc:  # surfaced by run()
            self._errors.append(exc)
            self._stop.set()
        finally:
            self.q_in.close()

    def _is_active(self) -> bool:
        if self.active is None:
            return True
        try:
            return self.active() is not False
        except Exception:  # a broken probe must never stop the video
            log.debug("reader probe failed", exc_info=True)
            return True

    def _processing(self) -> None:
        try:
            while True:
                try:
                    frame = self.q_in.get(timeout=0.1)
                except Empty:
                    if self._stop.is_set():
                        break
                    continue
                except Closed:
                    break
                if not self._is_active():
                    with self.stats._lock:
                        self.stats.paused += 1
                    continue
                t0 = time.perf_counter()
                frame.output = self.process(frame.image)
                frame.t_processed = (time.perf_counter() - t0) * 1000.0
                with self.stats._lock:
                    self.stats.processed += 1
                self.q_out.put(frame)
        except BaseException as exc:
            self._errors.append(exc)
            self._stop.set()
        finally:
            self.q_out.close()

    # -- driver ---------------------------------------------------------------------------------
    def run(self, *, max_frames: int | None = None, duration: float | None = None) -> dict[str, Any]:
        """Run until the source ends, ``max_frames`` were output, ``duration`` passed, ``stop()``
        was called or ``poll()`` returned False. Returns the final statistics. Errors raised in
        the capture or processing thread are re-raised here."""
        self._threads = [threading.Thread(target=self._capture, name="backdrop-capture", daemon=True),
                         threading.Thread(target=self._processing, name="backdrop-process", daemon=True)]
        t_end = None if duration is None else time.perf_counter() + duration
        next_stats = time.perf_counter() + self.stats_interval
        last_write = time.perf_counter()
        try:
            for t in self._threads:  # inside the try: a Ctrl-C during a start still stops them
                start_thread(t)
            while True:
                try:
                    frame = self.q_out.get(timeout=0.02)
                except Empty:
                    frame = None
                except Closed:
                    break
                now = time.perf_counter()
                if frame is not None:
                    frame.t_output = now
                    self.sink.write(frame.output, frame)
                    frame.t_output = time.perf_counter()
                    self.stats.record_output(frame)
                    frame.image = None  # the input is not needed any more; keep memory flat
                    self._last_output = frame
                    last_write = now
                    if max_frames is not None and self.stats.output >= max_frames:
                        break
                elif (self._last_output is not None and now - last_write >= self.idle_repeat
                      and not self._is_active()):
                    self.sink.write(self._last_output.output, self._last_output)
                    last_write = now
                if self.poll is not None and self.poll() is False:
                    break
                if t_end is not None and now >= t_end:
                    break
                if self._stop.is_set() and self._errors:
                    break
                if self.on_stats is not None and now >= next_stats:
                    next_stats = now + self.stats_interval
                    self.on_stats(self.stats.snapshot())
        finally:
            self.stop()
        if self._errors:
            raise self._errors[0]
        return self.stats.snapshot()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask every stage to finish and wait for the threads (idempotent)."""
        self._stop.set()
        self.q_in.close()
        for t in self._threads:
            if t.ident is None:  # never started (a stop came first)
                continue
            t.join(timeout)
            if t.is_alive():  # pragma: no cover - a camera read that never returns
                log.warning("thread %s did not stop within %.0f s", t.name, timeout)
