"""The peers: one per browser connection, each owning everything it uses.

A :class:`PublisherPeer` sends its camera and gets the composite back, with its own
LiveProcessor, worker thread, data channel and upload dir; a :class:`ViewerPeer` receives a
publisher's stream. A watchdog closes a peer that never connects or stops sending, and
:meth:`Peer.close` releases all of it. The server is used by duck typing only (``config``,
``model``, ``relay``, ``publishers``, ``viewers``, ``upload_root``, ``_forget``, ``_peer_gone``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import logging
import secrets
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackdropError
from .config import INBOX_SIZE, MAX_TEXT_MESSAGE, UPLOAD_STALL_SECONDS, UPLOAD_TYPES
from .protocol import ClientError, one_line
from .track import PeerStats, drain, make_processed_track
from .uploads import UploadReceiver

if TYPE_CHECKING:
    from .app import BackdropServer

log = logging.getLogger(__name__)


class Peer:
    kind = "peer"

    def __init__(self, server: "BackdropServer"):
        from aiortc import RTCPeerConnection

        from .jitter import install
        install()  # frames leave the receive buffer at their last packet, not one frame later
        self.server = server
        self.id = secrets.token_hex(6)
        self.pc = RTCPeerConnection()
        self.created = time.monotonic()
        self.connected_at: float | None = None
        self.last_frame: float | None = None
        self.last_packet = 0.0           # the incoming video's last RTP packet (see packets_seen)
        self.video_receiver = None       # the RTCRtpReceiver of that video, once attached
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
                    now - max(self.last_frame or self.connected_at, self.packets_seen()) > cfg.idle_timeout:
                await self.close(f"no video for {cfg.idle_timeout:g} s")
            else:
                self.tick(now)

    def tick(self, now: float) -> None:
        pass

    def packets_seen(self) -> float:
        """When the last RTP packet of the incoming video arrived (``time.monotonic``), 0 if never.

        "No video" is no frame *and* no packet: a low-bitrate peer that lost one packet decodes
        nothing until its next keyframe, yet it is connected and sending. The time comes from
        aiortc's ``RTCRtpReceiver.getSynchronizationSources()`` (the W3C call: every SSRC heard in
        the last 10 s with its last packet's arrival, set per packet before decoding), read here
        every 0.5 s by the watchdog, so a packet is never missed.
        """
        receiver = self.video_receiver
        if receiver is None:
            return self.last_packet
        with contextlib.suppress(Exception):
            now_utc = datetime.datetime.now(datetime.timezone.utc)
            for src in receiver.getSynchronizationSources():
                age = max(0.0, (now_utc - src.timestamp).total_seconds())
                self.last_packet = max(self.last_packet, time.monotonic() - age)
        return self.last_packet

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


class PublisherPeer(Peer, UploadReceiver):
    """A browser sending its camera and receiving the composite, with its own pipeline."""

    kind = "publisher"

    def __init__(self, server: "BackdropServer"):
        super().__init__(server)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"peer-{self.id}")
        self.view_token = secrets.token_urlsafe(18)  # only this page learns it: viewers must present it
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
        from ..live import LiveProcessor, LiveSettings
        from ..pipeline import PipelineOptions

        cfg = self.server.config
        settings = LiveSettings(background=cfg.background, model=self.server.model)
        options = dataclasses.replace(cfg.options or PipelineOptions(), model=self.server.model,
                                      threads=cfg.threads, quiet=True)
        self.processor = LiveProcessor(settings, options=options, allow_files=False,
                                       resolve=self._resolve, known_uploads=lambda s: s in self.uploads,
                                       upscale=cfg.upscale)

    def _resolve(self, spec: str) -> Any:
        path = self.uploads.get(spec)
        return str(path) if path is not None else spec

    def attach(self, track) -> None:
        if track.kind == "video" and self.processed is None:
            self.video_receiver = next((t.receiver for t in self.pc.getTransceivers()
                                        if getattr(t.receiver, "track", None) is track), None)
            self.processed = make_processed_track(track, self)
            self.pc.addTrack(self.server.relay.subscribe(self.processed, buffered=False))
        else:
            self.spawn(drain(track))

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

        self.send({"type": "hello", "peer": self.id, "token": self.view_token,
                   "viewer": f"/viewer?token={self.view_token}", "settings": self.public_state(),
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
            self.send_error(one_line(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the peer down; say so and log it
            log.exception("peer %s: message failed", self.id)
            self.send_error(f"internal error: {one_line(exc)}")

    async def apply(self, changes: Any) -> None:
        loop = asyncio.get_running_loop()
        # decoding an image or loading a model is slow: do it off the event loop and off the
        # peer's frame thread, so neither this peer's video nor anybody else's stalls
        await loop.run_in_executor(None, self.processor.update, changes)
        self.send({"type": "state", "settings": self.public_state()})

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
        self.processor = self.processed = self.channel = self.video_receiver = None
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
