"""``backdrop serve``: the browser's camera in over WebRTC, the composite back out, live.

The page (``static/index.html``) asks for the camera, POSTs its offer as JSON ``{sdp, type}`` to
``/offer`` and gets the answer back; the server runs a low-latency Pipeline on every frame and
returns the processed track on the same connection. Controls travel over a data channel (JSON
text messages; background uploads as binary chunks after an ``upload`` header) and take effect
on the next frame. ``/viewer`` receives a publisher's composited stream (a class, a broadcast).

Why it is built this way:

- **Each peer owns its state**: one :class:`~backdrop.live.LiveProcessor` (Pipeline, background,
  model) and one worker thread per peer, so peers never share per-stream state and a model is
  only ever called from one thread.
- **No latency build-up**: aiortc queues every decoded frame; a reader task drains that queue
  and keeps only the newest frame, so a slow peer drops frames instead of falling behind.
- **Hostile input is expected**: malformed offers get a 400 (never a 500), sizes are capped
  before anything is allocated, uploads are sniffed, decoded and kept in a per-peer temp dir
  under a server-chosen name (the client's file name is never used as a path), and the number
  of peers is capped with a clear refusal.
- **Nothing leaks**: a peer that leaves, fails, never connects or silently stops sending is
  closed by a watchdog, which also ends its thread, tasks, tracks and temp files.
- **Local by default**: HTTP binds 127.0.0.1, and then ICE is restricted to the loopback address
  as well, so nothing is exposed on the network unless ``--host`` says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import ipaddress
import json
import logging
import math
import re
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackdropError, OptionError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MAX_OFFER_BYTES = 64 * 1024        # an SDP offer is a few KB
MAX_TEXT_MESSAGE = 16 * 1024       # data-channel JSON messages (settings are tiny)
MAX_UPLOADS_PER_PEER = 4
INBOX_SIZE = 256                   # data-channel messages waiting per peer (upload chunks included)
UPLOAD_STALL_SECONDS = 30.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon"}
UPLOAD_TYPES = {  # declared MIME type -> kind; the content is sniffed and decoded regardless
    "image/jpeg": "image", "image/png": "image", "image/webp": "image",
    "video/mp4": "video", "video/webm": "video",
}


class ServeError(BackdropError):
    """The server cannot start (port in use, bad certificate, missing extra)."""


class ClientError(Exception):
    """A request or message from a client that is refused; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class ServerConfig:
    """Every knob of the server; ``backdrop serve`` maps its flags 1:1 onto these."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_viewers: int = 16
    max_upload_bytes: int = 8 * 1024 * 1024
    background: str = "blur"
    model: str | None = None
    threads: int | None = None
    connect_timeout: float = 20.0     # offer answered -> connected
    idle_timeout: float = 10.0        # connected, but no video frame for this long -> dropped
    loopback_ice: bool | None = None  # None: only when ``host`` is a loopback address
    certfile: str | None = None
    keyfile: str | None = None
    marker_rows: int = 0              # measurement aid: copy the input's top rows to the output
    max_frame_pixels: int = 3840 * 2160  # larger incoming frames are scaled down before processing
    options: Any = None               # PipelineOptions for every peer (None: the defaults)

    def validate(self) -> "ServerConfig":
        if not 1 <= self.max_peers <= 256:
            raise OptionError(f"--max-peers must be between 1 and 256, got {self.max_peers}")
        if not 0 <= self.max_viewers <= 1024:
            raise OptionError(f"--max-viewers must be between 0 and 1024, got {self.max_viewers}")
        if not 1024 <= self.max_upload_bytes <= 512 * 1024 * 1024:
            raise OptionError("--max-upload-mb must be between 0.001 and 512")
        if not 0 <= self.port <= 65535:
            raise OptionError(f"--port must be between 0 and 65535, got {self.port}")
        if bool(self.certfile) != bool(self.keyfile):
            raise OptionError("--cert and --key go together")
        if self.background.strip().lower() == "transparent":
            raise OptionError("a live stream has no alpha channel: use a colour, blur or an image")
        return self

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


# -- ICE on loopback ------------------------------------------------------------------------------
_ice_patch_lock = threading.Lock()
_ice_patch_users = 0
_ice_original = None


@contextlib.contextmanager
def loopback_ice():
    """Make aiortc gather ICE candidates on 127.0.0.1 only (it skips loopback by default).

    A server bound to 127.0.0.1 serves only this machine; offering candidates on the network
    interfaces too would expose the media ports to the network for no benefit.
    """
    import aioice.ice

    global _ice_patch_users, _ice_original
    with _ice_patch_lock:
        if _ice_patch_users == 0:
            _ice_original = aioice.ice.get_host_addresses
            aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []
        _ice_patch_users += 1
    try:
        yield
    finally:
        with _ice_patch_lock:
            _ice_patch_users -= 1
            if _ice_patch_users == 0:
                aioice.ice.get_host_addresses = _ice_original


# -- helpers ------------------------------------------------------------------------------------------
def _json(obj: Any, status: int = 200):
    from aiohttp import web

    return web.json_response(obj, status=status, headers={"Cache-Control": "no-store"})


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:limit]


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


def check_offer_body(raw: bytes) -> tuple[str, str]:
    """Validate the body of ``POST /offer`` or ``/view``: JSON ``{sdp, type: "offer"}``."""
    if not raw:
        raise ClientError('empty body: POST JSON {"sdp": ..., "type": "offer"}')
    if len(raw) > MAX_OFFER_BYTES:
        raise ClientError(f"offer too large ({len(raw)} bytes, limit {MAX_OFFER_BYTES})", 413)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nesting
        raise ClientError('body is not JSON: POST {"sdp": ..., "type": "offer"}') from None
    if not isinstance(body, dict):
        raise ClientError('body must be a JSON object {"sdp": ..., "type": "offer"}')
    sdp, kind = body.get("sdp"), body.get("type")
    if kind != "offer":
        raise ClientError(f'"type" must be "offer", got {str(kind)[:20]!r}')
    if not isinstance(sdp, str) or not sdp.strip():
        raise ClientError('"sdp" must be a non-empty string')
    if not sdp.lstrip().startswith("v=0"):
        raise ClientError('"sdp" is not a session description (it must start with v=0)')
    if "\x00" in sdp:
        raise ClientError('"sdp" contains a NUL byte')
    lines = sdp.replace("\r\n", "\n").split("\n")
    media = [ln.split()[0][2:] for ln in lines if ln.startswith("m=") and ln.split()]
    if media.count("video") > 1 or media.count("audio") > 1 or media.count("application") > 1 or len(media) > 3:
        raise ClientError("the offer may carry one video track, one audio track and one data channel")
    return sdp, kind


def process_memory() -> dict[str, float]:
    """RSS in MB and the thread count of this process (for /stats and the soak test)."""
    rss = math.nan
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024.0
                    break
    except OSError:
        with contextlib.suppress(ImportError):
            import psutil

            rss = psutil.Process().memory_info().rss / 2**20
    return {"rss_mb": round(rss, 1), "threads": threading.active_count()}


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``), after a peer leaves.

    A peer's decoder, encoder and pipeline allocate many large, short-lived buffers from several
    threads; glibc keeps what they free in its arenas, so without this the RSS of a server whose
    peers come and go creeps up although nothing is leaked. No-op where glibc is absent.
    """
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                import ctypes

                _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


# -- media ---------------------------------------------------------------------------------------------
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
            out = peer.processor(image)
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
            peer.stats.out_times.append(time.monotonic())
            peer.stats.latency_ms.append((time.perf_counter() - arrived) * 1000.0)
            return out

        def stop(self) -> None:
            super().stop()
            self._reader.cancel()
            self._event.set()

    return ProcessedTrack


async def _drain(track) -> None:
    """Consume a track nobody uses (a page's audio), or aiortc would queue it forever."""
    _, MediaStreamError = _track_classes()
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()


# -- peers ---------------------------------------------------------------------------------------------
class Peer:
    kind = "peer"

    def __init__(self, server: "BackdropServer"):
        from aiortc import RTCPeerConnection

        self.server = server
        self.id = secrets.token_hex(6)
        self.pc = RTCPeerConnection()
        self.created = time.monotonic()
        self.connected_at: float | None = None
        self.last_frame: float | None = None
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        self.close_reason = ""

        @self.pc.on("connectionstatechange")
        async def _on_state():
            state = self.pc.connectionState
            log.debug("peer %s: %s", self.id, state)
            if state == "connected" and self.connected_at is None:
                self.connected_at = time.monotonic()
            elif state in ("failed", "closed"):
                await self.close(f"connection {state}")

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _watchdog(self) -> None:
        cfg = self.server.config
        while not self.closed:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if self.connected_at is None and now - self.created > cfg.connect_timeout:
                await self.close("did not connect in time")
            elif self.kind == "publisher" and self.connected_at is not None and \
                    now - (self.last_frame or self.connected_at) > cfg.idle_timeout:
                await self.close(f"no video for {cfg.idle_timeout:g} s")
            else:
                self.tick(now)

    def tick(self, now: float) -> None:
        pass

    async def close(self, reason: str = "closed") -> None:
        """Idempotent: ends tasks, tracks, the connection and everything the peer owns."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        log.info("peer %s (%s) closed: %s", self.id, self.kind, reason)
        self.server._forget(self)
        current = asyncio.current_task()
        for t in list(self.tasks):
            if t is not current:
                t.cancel()
        with contextlib.suppress(Exception):
            await self.pc.close()
        try:
            await self._release()
        finally:
            # event handlers close over the peer: drop them so the peer, its codecs and its
            # pipeline are freed now by reference counting, not at some later full GC
            with contextlib.suppress(Exception):
                self.pc.remove_all_listeners()
            self.server._peer_gone()

    async def _release(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.pc.connectionState,
                "age_s": round(time.monotonic() - self.created, 1)}


class PublisherPeer(Peer):
    """A browser sending its camera and receiving the composite, with its own pipeline."""

    kind = "publisher"

    def __init__(self, server: "BackdropServer"):
        super().__init__(server)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"peer-{self.id}")
        self.processor = None
        self.processed = None
        self.channel = None
        self.stats = PeerStats()
        self.upload_dir = Path(tempfile.mkdtemp(prefix=f"peer-{self.id}-", dir=server.upload_root))
        self.uploads: dict[str, Path] = {}
        self._upload_seq = 0
        self._upload: dict[str, Any] | None = None
        self._inbox: asyncio.Queue = asyncio.Queue(maxsize=INBOX_SIZE)
        self.dropped_messages = 0
        self._last_stats = 0.0

    # -- setup
    def make_processor(self) -> None:
        from ..live.controls import LiveProcessor, LiveSettings
        from ..pipeline import PipelineOptions

        cfg = self.server.config
        settings = LiveSettings(background=cfg.background, model=self.server.model)
        options = dataclasses.replace(cfg.options or PipelineOptions(), model=self.server.model,
                                      threads=cfg.threads, quiet=True)
        self.processor = LiveProcessor(settings, options=options, allow_files=False,
                                       resolve=self._resolve, known_uploads=lambda s: s in self.uploads)

    def _resolve(self, spec: str) -> Any:
        path = self.uploads.get(spec)
        return str(path) if path is not None else spec

    def attach(self, track) -> None:
        if track.kind == "video" and self.processed is None:
            self.processed = make_processed_track(track, self)
            self.pc.addTrack(self.server.relay.subscribe(self.processed, buffered=False))
        else:
            self.spawn(_drain(track))

    # -- data channel
    def on_datachannel(self, channel) -> None:
        if self.channel is not None:  # one control channel per peer
            channel.close()
            return
        self.channel = channel

        @channel.on("open")
        def _on_open():
            self.send_hello()

        @channel.on("message")
        def _on_message(message):
            # one consumer, in order (an upload's chunks follow its header), with a bounded
            # inbox: a client flooding the channel gets refusals, not unbounded tasks and memory
            try:
                self._inbox.put_nowait(message)
            except asyncio.QueueFull:
                self.dropped_messages += 1
                if isinstance(message, (bytes, bytearray, memoryview)) and self._upload is not None:
                    self._upload = None
                    self.send_error("upload aborted: too many messages at once")
                elif self.dropped_messages % 50 == 1:
                    self.send_error("too many messages at once; some were ignored")

        self.spawn(self._consume_inbox())
        if channel.readyState == "open":
            self.send_hello()

    async def _consume_inbox(self) -> None:
        while not self.closed:
            message = await self._inbox.get()
            await self.handle_message(message)

    def send(self, obj: dict[str, Any]) -> None:
        ch = self.channel
        if ch is not None and ch.readyState == "open" and not self.closed:
            with contextlib.suppress(Exception):
                ch.send(json.dumps(obj))

    def send_hello(self) -> None:
        from ..models import KNOWN_MODELS

        self.send({"type": "hello", "peer": self.id, "settings": self.public_state(),
                   "models": list(KNOWN_MODELS), "max_upload_bytes": self.server.config.max_upload_bytes,
                   "upload_types": sorted(UPLOAD_TYPES)})

    def public_state(self) -> dict[str, Any]:
        """The settings as the page may see them: a server-side model file by its name only."""
        from ..models import KNOWN_MODELS

        state = self.processor.state()
        if state.get("model") not in KNOWN_MODELS:
            state["model"] = Path(str(state.get("model"))).name
        return state

    def send_error(self, message: str) -> None:
        self.send({"type": "error", "message": message})

    async def handle_message(self, message: Any) -> None:
        """One data-channel message; every refusal is a one-line ``error`` message back."""
        try:
            if isinstance(message, (bytes, bytearray, memoryview)):
                await self._upload_chunk(bytes(message))
                return
            if not isinstance(message, str):
                raise ClientError("unsupported message")
            if len(message) > MAX_TEXT_MESSAGE:
                raise ClientError(f"message too long ({len(message)} characters, limit {MAX_TEXT_MESSAGE})")
            try:
                msg = json.loads(message)
            except (ValueError, RecursionError):
                raise ClientError("message is not JSON") from None
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ClientError('message must be a JSON object with a "type"')
            kind = msg["type"]
            if kind == "settings":
                changes = msg.get("settings")
                if changes is None:
                    changes = {k: v for k, v in msg.items() if k != "type"}
                await self.apply(changes)
            elif kind == "upload":
                self._upload_begin(msg)
            elif kind == "upload-cancel":
                self._upload = None
            elif kind == "ping":
                self.send({"type": "pong", "t": msg.get("t") if isinstance(msg.get("t"), (int, float)) else None})
            elif kind == "stats":
                self.send_stats(force=True)
            else:
                raise ClientError(f"unknown message type {kind[:30]!r}: use settings, upload, ping or stats")
        except (ClientError, BackdropError) as exc:
            self.send_error(_one_line(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the peer down; say so and log it
            log.exception("peer %s: message failed", self.id)
            self.send_error(f"internal error: {_one_line(exc)}")

    async def apply(self, changes: Any) -> None:
        loop = asyncio.get_running_loop()
        # decoding an image or loading a model is slow: do it off the event loop and off the
        # peer's frame thread, so neither this peer's video nor anybody else's stalls
        await loop.run_in_executor(None, self.processor.update, changes)
        self.send({"type": "state", "settings": self.public_state()})

    def _upload_begin(self, msg: dict[str, Any]) -> None:
        limit = self.server.config.max_upload_bytes
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
        path.write_bytes(data)
        self.uploads[upload_id] = path
        try:
            await self.apply({"background": upload_id, "effect": True})
        except BaseException as exc:
            self.uploads.pop(upload_id, None)
            path.unlink(missing_ok=True)
            if isinstance(exc, BackdropError):  # say why, but never show the server's paths
                reason = _one_line(exc).replace(str(path), name).replace(str(self.upload_dir), "")
                raise ClientError(f"{name} is not a usable image or video ({reason})") from None
            raise
        self._prune_uploads(keep=upload_id)
        self.send({"type": "uploaded", "id": upload_id, "name": name, "kind": kind, "bytes": len(data)})

    def _prune_uploads(self, keep: str) -> None:
        while len(self.uploads) > MAX_UPLOADS_PER_PEER:
            oldest = next(k for k in self.uploads if k != keep)
            self.uploads.pop(oldest).unlink(missing_ok=True)

    # -- housekeeping
    def send_stats(self, force: bool = False) -> None:
        self.send({"type": "stats", **self.stats.snapshot(), "peers": len(self.server.publishers)})

    def tick(self, now: float) -> None:
        if self._upload is not None and now - self._upload["t"] > UPLOAD_STALL_SECONDS:
            self._upload = None
            self.send_error("upload stalled and was discarded")
        if now - self._last_stats >= 1.0:
            self._last_stats = now
            self.send_stats()

    async def _release(self) -> None:
        if self.processed is not None:
            self.processed.stop()
        for viewer in list(self.server.viewers.values()):
            if viewer.source is self:
                await viewer.close("the stream ended")
        loop = asyncio.get_running_loop()
        # wait for the frame thread to finish its frame, then free the pipeline
        await loop.run_in_executor(None, self.executor.shutdown, True)
        if self.processor is not None:
            with contextlib.suppress(Exception):
                self.processor.close()
        if self.channel is not None:
            with contextlib.suppress(Exception):
                self.channel.remove_all_listeners()
        self.processor = self.processed = self.channel = None
        self._upload = None
        self.uploads.clear()
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.stats.snapshot()}


class ViewerPeer(Peer):
    """A browser receiving a publisher's composited stream."""

    kind = "viewer"

    def __init__(self, server: "BackdropServer", source: PublisherPeer):
        super().__init__(server)
        self.source = source
        self.track = server.relay.subscribe(source.processed, buffered=False)

    async def _release(self) -> None:
        self.track.stop()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source.id}


# -- the server ----------------------------------------------------------------------------------------
class BackdropServer:
    """The aiohttp application and the peers it holds."""

    def __init__(self, config: ServerConfig | None = None):
        try:
            import aiohttp  # noqa: F401
            import aiortc  # noqa: F401
        except ImportError:
            raise ServeError("backdrop serve needs the [web] extra: pip install 'backdrop[web]'") from None
        from aiortc.contrib.media import MediaRelay

        from ..models import DEFAULT_MODEL

        self.config = (config or ServerConfig()).validate()
        self.model = self.config.model or DEFAULT_MODEL
        self.publishers: dict[str, PublisherPeer] = {}
        self.viewers: dict[str, ViewerPeer] = {}
        self._reserved = 0
        self.relay = MediaRelay()
        self.upload_root = Path(tempfile.mkdtemp(prefix="backdrop-uploads-"))
        self.started = time.monotonic()
        self.refused = 0
        self._static = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES} \
            if STATIC_DIR.is_dir() else {}
        self._ice = None
        self.app = self._make_app()

    # -- app
    def _make_app(self):
        from aiohttp import web

        @web.middleware
        async def headers(request, handler):
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                if exc.status >= 400 and request.path in ("/offer", "/view"):
                    return _json({"error": exc.reason}, exc.status)
                raise
            resp.headers.setdefault("X-Content-Type-Options", "nosniff")
            resp.headers.setdefault("Referrer-Policy", "no-referrer")
            resp.headers.setdefault("Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:")
            return resp

        app = web.Application(client_max_size=MAX_OFFER_BYTES, middlewares=[headers])
        app.router.add_get("/", self.page("index.html"))
        app.router.add_get("/viewer", self.page("viewer.html"))
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/favicon.ico", self.no_content)
        app.router.add_get("/config", self.get_config)
        app.router.add_get("/peers", self.get_peers)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_post("/offer", self.post_offer)
        app.router.add_post("/view", self.post_view)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, app) -> None:
        if self.config.loopback_ice if self.config.loopback_ice is not None else self.config.loopback:
            self._ice = loopback_ice()
            self._ice.__enter__()

    async def _on_shutdown(self, app) -> None:
        await self.close_all("server shutting down")
        if self._ice is not None:
            self._ice.__exit__(None, None, None)
            self._ice = None
        shutil.rmtree(self.upload_root, ignore_errors=True)

    async def close_all(self, reason: str) -> None:
        peers = [*self.viewers.values(), *self.publishers.values()]
        await asyncio.gather(*(p.close(reason) for p in peers), return_exceptions=True)

    def page(self, name: str):
        async def handler(request):
            return self._file(name)
        return handler

    def _file(self, name: str):
        from aiohttp import web

        path = self._static.get(name)
        if path is None:
            raise web.HTTPNotFound()
        return web.Response(body=path.read_bytes(), content_type=CONTENT_TYPES[path.suffix].split(";")[0],
                            charset="utf-8" if "charset" in CONTENT_TYPES[path.suffix] else None,
                            headers={"Cache-Control": "no-cache"})

    async def no_content(self, request):
        from aiohttp import web

        return web.Response(status=204)

    async def static(self, request):
        # only files that were in the package's static folder at startup, by exact name:
        # "../", "%2e%2e", absolute paths and the like are simply not in the table
        return self._file(request.match_info["name"])

    async def get_config(self, request):
        from ..models import KNOWN_MODELS

        return _json({"models": list(KNOWN_MODELS), "model": self.model, "background": self.config.background,
                      "max_upload_bytes": self.config.max_upload_bytes, "upload_types": sorted(UPLOAD_TYPES),
                      "max_peers": self.config.max_peers})

    async def get_peers(self, request):
        return _json({"publishers": [p.describe() for p in self.publishers.values() if p.processed is not None]})

    def stats(self) -> dict[str, Any]:
        return {"publishers": len(self.publishers), "viewers": len(self.viewers), "refused": self.refused,
                "tasks": len(asyncio.all_tasks()), "uptime_s": round(time.monotonic() - self.started, 1),
                **process_memory()}

    async def get_stats(self, request):
        return _json({**self.stats(), "peers": [p.describe() for p in [*self.publishers.values(),
                                                                        *self.viewers.values()]]})

    def _forget(self, peer: Peer) -> None:
        self.publishers.pop(peer.id, None)
        self.viewers.pop(peer.id, None)

    def _peer_gone(self) -> None:
        """After a peer is released: collect what cycles remain and hand freed memory back.

        Without this, closed peers sit in reference cycles (aiortc's transports and event
        emitters) until an occasional full collection, holding their codec buffers and frames:
        a server whose peers come and go then grows by megabytes per peer before it shrinks.
        """
        t0 = time.perf_counter()
        gc.collect()
        release_free_memory()
        log.debug("peer cleanup: gc + trim in %.1f ms", (time.perf_counter() - t0) * 1000)

    # -- signalling
    async def _negotiate(self, peer: Peer, sdp: str):
        from aiortc import RTCSessionDescription

        try:
            await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as exc:  # aiortc raises ValueError, KeyError, IndexError... on bad SDP
            log.debug("bad offer", exc_info=True)
            raise ClientError(f"cannot use this offer: {_one_line(exc, 160)}") from None

    async def _answer(self, peer: Peer) -> dict[str, Any]:
        try:
            answer = await peer.pc.createAnswer()
            await peer.pc.setLocalDescription(answer)
        except Exception as exc:
            log.debug("cannot answer", exc_info=True)
            raise ClientError(f"cannot answer this offer: {_one_line(exc, 160)}") from None
        desc = peer.pc.localDescription
        return {"sdp": desc.sdp, "type": desc.type, "peer": peer.id}

    async def post_offer(self, request):
        """A publisher: its camera in, the composite back, controls on the data channel."""
        peer = None
        reserved = False
        try:
            sdp, _ = check_offer_body(await self._body(request))
            if len(self.publishers) + self._reserved >= self.config.max_peers:
                self.refused += 1
                raise ClientError(f"the server is full: {self.config.max_peers} of {self.config.max_peers} "
                                  "peers are connected; try again later", 503)
            self._reserved += 1
            reserved = True
            peer = PublisherPeer(self)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(peer.executor, peer.make_processor)
            peer.pc.on("track", peer.attach)
            peer.pc.on("datachannel", peer.on_datachannel)
            await self._negotiate(peer, sdp)
            if peer.processed is None:
                raise ClientError("the offer carries no video track to process (is the camera on?)")
            reply = await self._answer(peer)
            self.publishers[peer.id] = peer
            peer.spawn(peer._watchdog())
            log.info("peer %s joined (%d/%d)", peer.id, len(self.publishers), self.config.max_peers)
            return _json(reply)
        except ClientError as exc:
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return _json({"error": str(exc)}, exc.status)
        except BackdropError as exc:  # e.g. the model cannot be loaded
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return _json({"error": str(exc)}, 500 if not isinstance(exc, OptionError) else 400)
        except BaseException:
            if peer is not None:
                await peer.close("error")
            raise
        finally:
            if reserved:
                self._reserved -= 1

    async def post_view(self, request):
        """A viewer: receives a publisher's composited stream (``"peer"`` picks which)."""
        peer = None
        try:
            raw = await self._body(request)
            sdp, _ = check_offer_body(raw)
            wanted = json.loads(raw).get("peer")  # parsed fine just above
            if wanted is not None and not isinstance(wanted, str):
                raise ClientError('"peer" must be a peer id string')
            live = [p for p in self.publishers.values() if p.processed is not None and not p.closed]
            if wanted:
                source = self.publishers.get(wanted)
                if source is None or source not in live:
                    raise ClientError("no such stream (it may have ended); see GET /peers", 404)
            elif live:
                source = max(live, key=lambda p: p.created)
            else:
                raise ClientError("nobody is streaming yet: open the main page first", 404)
            if len(self.viewers) >= self.config.max_viewers:
                self.refused += 1
                raise ClientError(f"too many viewers ({self.config.max_viewers}); try again later", 503)
            peer = ViewerPeer(self, source)
            self.viewers[peer.id] = peer
            await self._negotiate(peer, sdp)
            video = [t for t in peer.pc.getTransceivers() if t.kind == "video"]
            if not video:
                raise ClientError("the offer has no video to receive (add a recvonly video transceiver)")
            peer.pc.addTrack(peer.track)
            reply = await self._answer(peer)
            peer.spawn(peer._watchdog())
            return _json({**reply, "source": source.id})
        except ClientError as exc:
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return _json({"error": str(exc)}, exc.status)
        except BaseException:
            if peer is not None:
                await peer.close("error")
            raise

    async def _body(self, request) -> bytes:
        from aiohttp import web

        if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
            raise ClientError(f"offer too large ({request.content_length} bytes, limit {MAX_OFFER_BYTES})", 413)
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ClientError(f"offer too large (limit {MAX_OFFER_BYTES} bytes)", 413) from None


# -- running it ----------------------------------------------------------------------------------------
def _ssl_context(cfg: ServerConfig) -> ssl.SSLContext | None:
    if not cfg.certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load --cert/--key: {_one_line(exc)}") from None
    return ctx


async def start_site(server: BackdropServer):
    """Bind and start; returns (runner, url). A busy port is a user error."""
    from aiohttp import web

    cfg = server.config
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    ctx = _ssl_context(cfg)
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ctx)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc} "
                         "(choose another --port)") from None
    sockets = site._server.sockets if site._server else []  # the real port when --port 0
    port = sockets[0].getsockname()[1] if sockets else cfg.port
    scheme = "https" if ctx else "http"
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return runner, f"{scheme}://{host}:{port}/"


def serve(config: ServerConfig, *, on_ready=None) -> None:
    """Run the server until Ctrl-C / SIGTERM (the CLI)."""
    server = BackdropServer(config)

    async def main():
        runner, url = await start_site(server)
        if on_ready:
            on_ready(url)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(server.upload_root, ignore_errors=True)


class ServerThread:
    """The server on its own event loop in a background thread (tests, benchmarks, embedding).

    >>> with ServerThread(ServerConfig(port=0)) as srv:   # doctest: +SKIP
    ...     print(srv.url)
    """

    def __init__(self, config: ServerConfig | None = None):
        self.config = dataclasses.replace(config or ServerConfig(port=0))
        self.server: BackdropServer | None = None
        self.url = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="backdrop-serve", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot():
            self.server = BackdropServer(self.config)
            self._runner, self.url = await start_site(self.server)

        try:
            self.loop.run_until_complete(boot())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        try:
            self.loop.run_until_complete(self._runner.cleanup())
            # whatever aiortc left behind (timers of closed transports) is cancelled, not leaked
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            if self.server is not None:
                shutil.rmtree(self.server.upload_root, ignore_errors=True)

    def start(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn, timeout: float = 30.0):
        """Run ``fn()`` (a plain function or a coroutine function) on the server's loop."""
        async def wrapper():
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stats(self) -> dict[str, Any]:
        return self.call(self.server.stats)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
