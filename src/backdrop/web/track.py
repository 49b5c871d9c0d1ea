"""The processed video track: newest incoming frame -> a ``process`` function -> composite.

Like the ``VideoTransformTrack(track, transform)`` of aiortc's server example, it is given what
it calls (``source``, ``process``, ``on_frame``) and knows nothing of peers or the server; plus
what a live server needs: a reader task keeps only the newest frame (a slow peer drops frames
instead of falling behind), oversized frames are scaled down first, processing runs on the
peer's own thread, and the counters are the track's own. The class is defined on first use, so
importing this module does not need aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


def _track_classes():
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    return MediaStreamTrack, MediaStreamError


class PeerStats:
    """Per-peer counters; the processing-time window is bounded so memory stays flat."""

    def __init__(self) -> None:
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.process_ms: deque[float] = deque(maxlen=300)
        self.latency_ms: deque[float] = deque(maxlen=300)  # decoded frame in -> processed frame out
        self.out_times: deque[float] = deque(maxlen=120)

    def snapshot(self) -> dict[str, Any]:
        t = list(self.out_times)
        recent = [x for x in t if t and x >= t[-1] - 2.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 2 and recent[-1] > recent[0] else 0.0
        ms = sorted(self.process_ms)
        lat = sorted(self.latency_ms)
        return {"received": self.received, "processed": self.processed, "dropped": self.dropped,
                "fps": round(fps, 1), "process_ms": round(ms[len(ms) // 2], 1) if ms else None,
                "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
                "latency_ms_p95": round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1) if lat else None}


def make_processed_track(source, process: Callable[[np.ndarray], np.ndarray],
                         on_frame: Callable[[], None] | None = None, *, executor, max_pixels: int,
                         marker_rows: int = 0):
    """The outgoing track: newest frame of ``source`` -> ``process`` -> composite.

    ``process`` takes an RGB uint8 HxWx3 frame and returns the composite (RGB uint8); it runs on
    ``executor`` (the peer's own thread) and decides itself what to show when it fails.
    ``on_frame()`` is told of each processed frame. Frames over ``max_pixels`` are scaled down
    first (a client must not choose our CPU bill); ``marker_rows`` top rows pass through
    unprocessed (latency measurements). The track keeps its own :class:`PeerStats`."""
    return _processed_track_class()(source, process, on_frame, executor=executor, max_pixels=max_pixels,
                                    marker_rows=marker_rows)


@functools.lru_cache(maxsize=1)
def _processed_track_class():
    """Defined on first use, so importing this module does not need aiortc."""
    import av

    MediaStreamTrack, MediaStreamError = _track_classes()

    class ProcessedTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self, source, process, on_frame, *, executor, max_pixels: int, marker_rows: int) -> None:
            super().__init__()
            self.source = source
            self.process = process
            self.on_frame = on_frame
            self.executor = executor
            self.max_pixels = max_pixels
            self.marker_rows = marker_rows
            self.stats = PeerStats()
            self.last_frame: float | None = None  # when the last frame arrived (time.monotonic)
            self._latest = None
            self._arrived = 0.0
            self._ended = False
            self._event = asyncio.Event()
            self._reader = asyncio.ensure_future(self._pull())

        async def _pull(self) -> None:
            try:
                while True:
                    frame = await self.source.recv()
                    self.stats.received += 1
                    self.last_frame = time.monotonic()
                    if self._latest is not None:
                        self.stats.dropped += 1  # drop-oldest: never queue behind a slow frame
                    self._latest = frame
                    self._arrived = time.perf_counter()
                    self._event.set()
            except (MediaStreamError, asyncio.CancelledError):
                pass
            finally:
                self._ended = True
                self._event.set()

        def _process(self, frame):
            import cv2

            limit = self.max_pixels
            if frame.width * frame.height > limit:  # a client must not choose our CPU bill
                scale = math.sqrt(limit / (frame.width * frame.height))
                w2, h2 = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
                image = frame.reformat(width=w2, height=h2, format="rgb24").to_ndarray()
            else:
                image = frame.to_ndarray(format="rgb24")
            t0 = time.perf_counter()
            out = self.process(image)
            rows = self.marker_rows
            if rows:
                out = out.copy() if out is image else out
                out[:rows] = image[:rows]
            self.stats.process_ms.append((time.perf_counter() - t0) * 1000.0)
            h, w = out.shape[:2]
            if h % 2 == 0 and w % 2 == 0:
                vf = av.VideoFrame.from_ndarray(cv2.cvtColor(out, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")
            vf.pts = frame.pts
            vf.time_base = frame.time_base
            return vf

        async def recv(self):
            if self.readyState != "live":
                raise MediaStreamError
            while self._latest is None:
                if self._ended or self.readyState != "live":
                    raise MediaStreamError
                self._event.clear()
                await self._event.wait()
            frame, self._latest = self._latest, None
            arrived = self._arrived
            loop = asyncio.get_running_loop()
            try:
                out = await loop.run_in_executor(self.executor, self._process, frame)
            except RuntimeError:  # executor shut down: the peer is closing
                raise MediaStreamError from None
            self.stats.processed += 1
            self.stats.out_times.append(time.monotonic())
            self.stats.latency_ms.append((time.perf_counter() - arrived) * 1000.0)
            if self.on_frame is not None:
                self.on_frame()
            return out

        def stop(self) -> None:
            super().stop()
            self._reader.cancel()
            self._event.set()

    return ProcessedTrack


async def drain(track) -> None:
    """Consume a track nobody uses (a page's audio), or aiortc would queue it forever."""
    _, MediaStreamError = _track_classes()
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()
