"""A Python WebRTC client for ``backdrop serve``: what a browser does, scriptable.

Used by the tests (several peers, hostile messages, a peer that vanishes) and by
``benchmarks/live.py`` (loopback latency and fps). It sends real frames at a fixed rate and,
when ``marker=True``, writes each frame's sequence number into its top rows as large black and
white blocks (they survive VP8 compression); a server started with ``marker_rows`` copies those
rows to its output, so every returned frame can be matched to the frame that produced it and the
full round trip (encode, network, decode, pipeline, encode, network, decode) timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

MARKER_BITS = 20
MARKER_BLOCK = 16
MARKER_ROWS = MARKER_BLOCK


def draw_marker(image: np.ndarray, seq: int) -> np.ndarray:
    """Write ``seq`` into the top ``MARKER_ROWS`` rows as ``MARKER_BITS`` black/white blocks."""
    out = image.copy()
    out[:MARKER_ROWS, : MARKER_BITS * MARKER_BLOCK] = 0
    for bit in range(MARKER_BITS):
        if seq >> bit & 1:
            x = bit * MARKER_BLOCK
            out[:MARKER_ROWS, x:x + MARKER_BLOCK] = 255
    return out


def read_marker(image: np.ndarray) -> int:
    """The sequence number drawn by :func:`draw_marker` (block centres, robust to compression)."""
    seq = 0
    c0, c1 = MARKER_BLOCK // 4, MARKER_BLOCK - MARKER_BLOCK // 4
    for bit in range(MARKER_BITS):
        x = bit * MARKER_BLOCK
        if image[c0:c1, x + c0:x + c1].mean() > 127:
            seq |= 1 << bit
    return seq


def _make_track(frames: Sequence[np.ndarray], fps: float, marker: bool, sent: dict[int, float]):
    import av
    from aiortc import VideoStreamTrack

    class FramesTrack(VideoStreamTrack):
        """Plays ``frames`` in a loop at ``fps``; remembers when each sequence number left."""

        def __init__(self) -> None:
            super().__init__()
            self.seq = 0
            self._t0: float | None = None

        async def recv(self):
            if self._t0 is None:
                self._t0 = time.perf_counter()
            target = self._t0 + self.seq / fps
            delay = target - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            img = frames[self.seq % len(frames)]
            if marker:
                img = draw_marker(img, self.seq)
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = int(self.seq * 90000 / fps)
            vf.time_base = fractions.Fraction(1, 90000)
            sent[self.seq] = time.perf_counter()
            if len(sent) > 4096:  # keep memory flat in long runs
                for k in sorted(sent)[:1024]:
                    sent.pop(k, None)
            self.seq += 1
            return vf

    return FramesTrack()


class Client:
    """One peer: sends ``frames`` at ``fps``, receives the processed track, talks on the channel."""

    def __init__(self, base_url: str, frames: Sequence[np.ndarray], *, fps: float = 30.0, marker: bool = False,
                 keep_frames: int = 0, ssl: Any = None):
        self.base_url = base_url.rstrip("/") + "/"
        self.ssl = ssl  # an ssl.SSLContext for an https:// server (a self-signed certificate, say)
        self.frames = frames
        self.fps = fps
        self.marker = marker
        self.keep_frames = keep_frames
        self.sent: dict[int, float] = {}
        self.latencies_ms: list[float] = []
        self.received = 0
        self.received_times: list[float] = []
        self.last_frames: list[np.ndarray] = []
        self.messages: list[dict[str, Any]] = []
        self.peer: str | None = None
        self.token: str | None = None  # the viewer token the server gave this publisher
        self.pc = None
        self.channel = None
        self._tasks: list[asyncio.Task] = []
        self._channel_open = asyncio.Event()
        self._got_message = asyncio.Event()

    async def connect(self, timeout: float = 20.0) -> dict[str, Any]:
        """Offer, answer, and wait until the control channel is open and the server said hello.
        Raises ConnectionRefusedError ("STATUS: message") when the server refuses."""
        import aiohttp
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from .jitter import install
        install()  # as the server: a received frame is decoded at its last packet
        self.pc = pc = RTCPeerConnection()
        pc.addTrack(_make_track(self.frames, self.fps, self.marker, self.sent))
        self.channel = pc.createDataChannel("controls")

        @self.channel.on("open")
        def _open():
            self._channel_open.set()

        @self.channel.on("message")
        def _message(m):
            if isinstance(m, str):
                with contextlib.suppress(ValueError):
                    self.messages.append(json.loads(m))
                    self._got_message.set()

        @pc.on("track")
        def _track(track):
            self._tasks.append(asyncio.ensure_future(self._consume(track)))

        await pc.setLocalDescription(await pc.createOffer())
        async with aiohttp.ClientSession() as http:
            async with http.post(self.base_url + "offer", json={"sdp": pc.localDescription.sdp,
                                                                 "type": pc.localDescription.type},
                                 **({"ssl": self.ssl} if self.ssl is not None else {})) as res:
                body = await res.json()
                if res.status != 200:
                    await pc.close()
                    raise ConnectionRefusedError(f"{res.status}: {body.get('error')}")
        self.peer = body["peer"]
        self.token = body.get("token")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body["sdp"], type=body["type"]))
        await asyncio.wait_for(self._channel_open.wait(), timeout)
        end = time.monotonic() + timeout
        while not any(m.get("type") == "hello" for m in self.messages):  # the server's settings
            if time.monotonic() > end:
                raise TimeoutError("the server did not say hello on the data channel")
            await asyncio.sleep(0.02)
        return body

    async def _consume(self, track) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                now = time.perf_counter()
                self.received += 1
                self.received_times.append(now)
                if self.marker or self.keep_frames:
                    img = frame.to_ndarray(format="rgb24")
                    if self.marker:
                        t_sent = self.sent.get(read_marker(img))
                        if t_sent is not None:
                            self.latencies_ms.append((now - t_sent) * 1000.0)
                    if self.keep_frames:
                        self.last_frames.append(img)
                        del self.last_frames[:-self.keep_frames]

    def send(self, obj: Any) -> None:
        self.channel.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def request(self, obj: Any, want: set[str], timeout: float = 10.0) -> dict[str, Any]:
        """Send a message and wait for the next reply whose ``type`` is in ``want``."""
        start = len(self.messages)
        self.send(obj)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for m in self.messages[start:]:
                if m.get("type") in want:
                    return m
            self._got_message.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._got_message.wait(), 0.2)
        raise TimeoutError(f"no {want} reply to {str(obj)[:80]}")

    async def upload(self, data: bytes, name: str, mime: str, chunk: int = 16 * 1024,
                     size: int | None = None) -> dict[str, Any]:
        start = len(self.messages)
        self.send({"type": "upload", "name": name, "mime": mime, "size": len(data) if size is None else size})
        for off in range(0, len(data), chunk):
            self.channel.send(data[off:off + chunk])
            await asyncio.sleep(0)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            for m in self.messages[start:]:
                if m.get("type") in ("uploaded", "error"):
                    return m
            await asyncio.sleep(0.05)
        raise TimeoutError("no reply to the upload")

    async def wait_frames(self, n: int, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while self.received < n:
            if time.monotonic() > end:
                raise TimeoutError(f"received {self.received} of {n} frames")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        if self.pc is not None:
            await self.pc.close()
