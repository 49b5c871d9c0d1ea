"""The peers: one per browser connection, each owning everything it uses.

A :class:`~backdrop.web.publisher.PublisherPeer` sends its camera and gets the composite back, with its own
LiveProcessor, worker thread, data channel and upload dir; a :class:`ViewerPeer` receives a
publisher's stream. A watchdog closes a peer that never connects or stops sending, and
:meth:`Peer.close` releases all of it. A peer only calls down: it is given its settings and
three callbacks (:class:`PeerLinks`) by whoever made it, and tells it through them that it
closed, that it was released and that it processed a frame; it never reaches into the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import ServerConfig

log = logging.getLogger(__name__)


def _nothing(*_: Any) -> None:
    return None


@dataclass(frozen=True)
class PeerLinks:
    """What a peer is given by whoever makes it: the settings it reads and the callbacks it calls.

    ``on_closed(peer)``: the peer closed (forget it); ``on_released()``: everything it owned is
    freed; ``on_frame()``: a frame was processed on this machine; ``publisher_count()``: how many
    publishers there are (the page's stats line)."""

    config: ServerConfig
    model: str
    relay: Any  # aiortc's MediaRelay: one decoded stream, many viewers
    upload_root: Path
    on_closed: Callable[[Any], None] = _nothing
    on_released: Callable[[], None] = _nothing
    on_frame: Callable[[], None] = _nothing
    publisher_count: Callable[[], int] = lambda: 0


class Peer:
    role = "peer"

    def __init__(self, links: PeerLinks):
        from aiortc import RTCPeerConnection

        from .jitter import install
        install()  # frames leave the receive buffer at their last packet, not one frame later
        self.links = links
        self.id = secrets.token_hex(6)
        self.pc = RTCPeerConnection()
        self.created = time.monotonic()
        self.connected_at: float | None = None
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
                self.on_connected()
            elif state in ("failed", "closed"):
                await self.close(f"connection {state}")

    def on_connected(self) -> None:
        """On the loop, once ICE and DTLS are through: what a peer builds only for a real caller."""

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    @property
    def last_frame(self) -> float | None:
        """When the last incoming video frame arrived (``time.monotonic``), None if never."""
        return None

    async def _watchdog(self) -> None:
        cfg = self.links.config
        while not self.closed:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            if self.connected_at is None and now - self.created > cfg.connect_timeout:
                await self.close("did not connect in time")
            elif self.role == "publisher" and self.connected_at is not None and \
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
        log.info("peer %s (%s) closed: %s", self.id, self.role, reason)
        self.links.on_closed(self)
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
            self.links.on_released()

    async def _release(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "state": self.pc.connectionState,
                "age_s": round(time.monotonic() - self.created, 1)}


class ViewerPeer(Peer):
    """A browser receiving a publisher's composited stream."""

    role = "viewer"

    def __init__(self, links: PeerLinks, source: Any):
        super().__init__(links)
        self.source = source
        self.track = links.relay.subscribe(source.processed, buffered=False)
        source.viewers.add(self)

    async def _release(self) -> None:
        self.track.stop()
        self.source.viewers.discard(self)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": self.source.id}
