"""The processed video track: newest incoming frame -> the peer's processor -> composite.

Like the ``VideoTransformTrack`` of aiortc's server example, plus what a live server needs: a
reader task keeps only the newest frame (a slow peer drops frames instead of falling behind),
oversized frames are scaled down first, and processing runs on the peer's own thread. The
class is defined on first use, so importing this module does not need aiortc.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import logging

import numpy as np

if TYPE_CHECKING:
    from .peers import PublisherPeer


log = logging.getLogger(__name__)


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


def make_processed_track(source, peer: "PublisherPeer"):
    """The outgoing track of a publisher: newest incoming frame -> processor -> composite."""
    return _processed_track_class()(source, peer)


@functools.lru_cache(maxsize=1)
def _processed_track_class():
    """Defined on first use, so importing this module does not need aiortc."""
    import av

    MediaStreamTrack, MediaStreamError = _track_classes()

    class ProcessedTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self, source, peer: "PublisherPeer") -> None:
            super().__init__()
            self.source = source
            self.peer = peer
            self._latest = None
            self._arrived = 0.0
            self._ended = False
            self._event = asyncio.Event()
            self._loop = asyncio.get_event_loop()
            self._last_good = None  # the last composite: shown while processing fails
            self._failing = False
            self._reader = asyncio.ensure_future(self._pull())

        async def _pull(self) -> None:
            source, peer = self.source, self.peer
            try:
                while True:
                    frame = await source.recv()
                    peer.stats.received += 1
                    peer.last_frame = time.monotonic()
                    if self._latest is not None:
                        peer.stats.dropped += 1  # drop-oldest: never queue behind a slow frame
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

            peer = self.peer
            limit = peer.server.config.max_frame_pixels
            if frame.width * frame.height > limit:  # a client must not choose our CPU bill
                scale = math.sqrt(limit / (frame.width * frame.height))
                w2, h2 = max(2, int(frame.width * scale) // 2 * 2), max(2, int(frame.height * scale) // 2 * 2)
                image = frame.reformat(width=w2, height=h2, format="rgb24").to_ndarray()
            else:
                image = frame.to_ndarray(format="rgb24")
            t0 = time.perf_counter()
            out = self._composite(image)
            rows = peer.server.config.marker_rows
            if rows:
                out = out.copy() if out is image else out
                out[:rows] = image[:rows]
            peer.stats.process_ms.append((time.perf_counter() - t0) * 1000.0)
            h, w = out.shape[:2]
            if h % 2 == 0 and w % 2 == 0:
                vf = av.VideoFrame.from_ndarray(cv2.cvtColor(out, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24")
            vf.pts = frame.pts
            vf.time_base = frame.time_base
            return vf

        def _composite(self, image):
            """The processor's output; when it fails (a background video that decodes only garbage
            after a few frames, say), the last good frame (or flat grey), and the
            page is told once, with one log line, instead of the track dying."""
            peer = self.peer
            try:
                out = peer.processor(image)
            except Exception as exc:
                if not self._failing:
                    self._failing = True
                    text = str(exc).strip().splitlines()
                    reason = (text[0] if text else type(exc).__name__)[:160]
                    log.warning("peer %s: processing failed, showing the last good frame: %s", peer.id, reason)
                    msg = f"the background cannot be used any more ({reason}); back to {peer.server.config.background}"
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._fall_back, msg)
                if self._last_good is not None:
                    return self._last_good
                return np.full_like(image, 128)  # a flat grey: never the room the user wanted hidden
            self._failing = False
            self._last_good = out
            return out

        def _fall_back(self, msg: str) -> None:
            """On the loop: tell the page, and go back to the server's background."""
            peer = self.peer
            if peer.closed or peer.processor is None:
                return
            peer.send_error(msg.replace(str(peer.upload_dir), ""))

            async def reset():
                with contextlib.suppress(Exception):
                    await peer.apply({"background": peer.server.config.background})
            peer.spawn(reset())

        async def recv(self):
            peer = self.peer
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
                out = await loop.run_in_executor(peer.executor, self._process, frame)
            except RuntimeError:  # executor shut down: the peer is closing
                raise MediaStreamError from None
            peer.stats.processed += 1
            peer.server.frames_processed += 1
            peer.stats.out_times.append(time.monotonic())
            peer.stats.latency_ms.append((time.perf_counter() - arrived) * 1000.0)
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
