"""The publishing peer: a browser sending its camera and receiving the composite, with its own
pipeline (a LiveProcessor on its own thread), data channel, uploads and viewers.

It only calls down, like every peer (:class:`~backdrop.web.peers.PeerLinks`): the processed
track is given the frame function and the frame callback, the page's messages come in on the
data channel, and closing is reported through the links.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackdropError
from .config import INBOX_SIZE, MAX_TEXT_MESSAGE, UPLOAD_STALL_SECONDS, UPLOAD_TYPES
from .frame_worker import WorkerGone
from .peers import Peer, PeerLinks
from .protocol import ClientError, one_line
from .track import PeerStats, drain, make_processed_track
from .uploads import UploadReceiver

log = logging.getLogger(__name__)


class PublisherPeer(Peer, UploadReceiver):
    """A browser sending its camera and receiving the composite, with its own pipeline."""

    role = "publisher"

    def __init__(self, links: PeerLinks):
        super().__init__(links)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"peer-{self.id}")
        self.view_token = secrets.token_urlsafe(18)  # only this page learns it: viewers must present it
        self.processor = None
        self.processed = None
        self.channel = None
        self.viewers: set[Peer] = set()  # the ViewerPeers watching this stream; closed with it
        self._no_stats = PeerStats()  # before the video track exists
        self._last_good: np.ndarray | None = None  # the last composite: shown while processing fails
        self._failing = False
        self.upload_dir = Path(tempfile.mkdtemp(prefix=f"peer-{self.id}-", dir=links.upload_root))
        self.uploads: dict[str, Path] = {}
        self._upload_seq = 0
        self._upload: dict[str, Any] | None = None
        self._inbox: asyncio.Queue = asyncio.Queue(maxsize=INBOX_SIZE)
        self.dropped_messages = 0
        self._last_stats = 0.0
        self._loop = asyncio.get_event_loop()
        self._building: asyncio.Future | None = None  # the pipeline's build, once connected
        self._build_error: BaseException | None = None

    # -- setup
    def make_processor(self) -> None:
        from ..live import LiveProcessor, LiveSettings
        from ..engine import PipelineOptions

        cfg = self.links.config
        settings = LiveSettings(background=cfg.background, model=self.links.model)
        options = dataclasses.replace(cfg.options or PipelineOptions(), model=self.links.model,
                                      threads=cfg.threads, quiet=True)
        if cfg.frame_worker == "process":  # the default: the pipeline off the event loop's GIL
            from .frame_worker import FrameWorker

            self.processor = FrameWorker(settings, options=options, upscale=cfg.upscale,
                                         uploads=lambda: {k: str(v) for k, v in self.uploads.items()})
            return
        self.processor = LiveProcessor(settings, options=options, allow_files=False,
                                       resolve=self._resolve, known_uploads=lambda s: s in self.uploads,
                                       upscale=cfg.upscale)

    # -- the pipeline: built once the peer has connected, not at its offer
    def on_connected(self) -> None:
        self._start_building()

    def _start_building(self) -> asyncio.Future | None:
        """Build the pipeline on the peer's frame thread, once; the future says when (None: closing).

        Why not at the offer: an offer is answered to anyone who sends valid SDP, and a pipeline
        is a process with its model (110-160 ms of CPU, ~100 MB): the serve soak's attacker had
        three built a round for offers that never connected. A peer through ICE and DTLS runs a
        real WebRTC stack. The frame thread runs one thing at a time, so a first frame that comes
        before the build waits for it and never meets a half-built pipeline."""
        if self._building is None and not self.closed:
            try:
                self._building = self._loop.run_in_executor(self.executor, self._build)
            except RuntimeError:  # the executor is shut down: the peer is closing
                return None
            self.spawn(self._report_build(self._building))
        return self._building

    def _build(self) -> None:
        """On the frame thread: the pipeline, unless it exists, failed before or the peer is closing."""
        if self._build_error is not None:
            raise self._build_error
        if self.processor is None and not self.closed:
            try:
                self.make_processor()
            except BaseException as exc:
                self._build_error = exc
                raise

    async def _report_build(self, building: asyncio.Future) -> None:
        """A pipeline that cannot be built (no memory for a process, a model that stopped loading)
        ends the peer with one line to the page and the log; the page can call again."""
        try:
            await building
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - said to the page and the log, then the peer ends
            if not self.closed:
                log.warning("peer %s: the pipeline could not be built: %s", self.id, one_line(exc))
                for _ in range(100):  # the control channel opens just after the connection: up to 5 s
                    if self.closed or (self.channel is not None and self.channel.readyState == "open"):
                        break
                    await asyncio.sleep(0.05)
                self.send_error(f"processing could not start on the server: {one_line(exc, 160)}")
                await self.close("the pipeline could not be built")

    async def _ready(self) -> bool:
        """Wait for the pipeline (starting its build if the peer's state change has not yet)."""
        building = self._start_building()
        if building is None:
            return False
        with contextlib.suppress(Exception):
            await asyncio.shield(building)
        return self.processor is not None and not self.closed

    def _resolve(self, spec: str) -> Any:
        path = self.uploads.get(spec)
        return str(path) if path is not None else spec

    def attach(self, track) -> None:
        if track.kind == "video" and self.processed is None:
            self.video_receiver = next((t.receiver for t in self.pc.getTransceivers()
                                        if getattr(t.receiver, "track", None) is track), None)
            cfg = self.links.config
            self.processed = make_processed_track(track, self._composite, self.links.on_frame, executor=self.executor,
                                                  max_pixels=cfg.max_frame_pixels, marker_rows=cfg.marker_rows)
            self.pc.addTrack(self.links.relay.subscribe(self.processed, buffered=False))
        else:
            self.spawn(drain(track))

    @property
    def stats(self) -> PeerStats:
        """The video track's counters (empty ones before it exists)."""
        return self.processed.stats if self.processed is not None else self._no_stats

    @property
    def last_frame(self) -> float | None:
        return self.processed.last_frame if self.processed is not None else None

    # -- frames (on the peer's own thread)
    def _composite(self, image: np.ndarray) -> np.ndarray:
        """The processor's output; when it fails (a background video that decodes only garbage
        after a few frames, say), the last good frame (or flat grey), and the page is told once,
        with one log line, instead of the track dying."""
        try:
            if self.processor is None:  # the first frame came before the state change: build now
                with contextlib.suppress(Exception):  # a failure is reported (the peer closed) by _report_build
                    self._build()
                if self.processor is None:  # failed or closing: make sure the report runs
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._start_building)
                    return np.full_like(image, 128)
            out = self.processor(image)
        except WorkerGone as exc:  # the child died (killed, out of memory): this peer cannot go on
            if not self._failing:
                self._failing = True
                log.warning("peer %s: %s; closing the peer", self.id, one_line(exc))
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._worker_gone)
            return self._last_good if self._last_good is not None else np.full_like(image, 128)
        except Exception as exc:
            if not self._failing:
                self._failing = True
                reason = one_line(exc, 160)
                log.warning("peer %s: processing failed, showing the last good frame: %s", self.id, reason)
                msg = f"the background cannot be used any more ({reason}); back to {self.links.config.background}"
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._fall_back, msg)
            if self._last_good is not None:
                return self._last_good
            return np.full_like(image, 128)  # a flat grey: never the room the user wanted hidden
        self._failing = False
        self._last_good = out
        return out

    def _worker_gone(self) -> None:
        """On the loop: tell the page why its stream ends, and close the peer (the page can call again)."""
        if not self.closed:
            self.send_error("processing stopped on the server; reconnect to start again")
            self.spawn(self.close("the frame worker stopped"))

    def _fall_back(self, msg: str) -> None:
        """On the loop: tell the page, and go back to the server's background."""
        if self.closed or self.processor is None:
            return
        self.send_error(msg.replace(str(self.upload_dir), ""))

        async def reset():
            with contextlib.suppress(Exception):
                await self.apply({"background": self.links.config.background})
        self.spawn(reset())

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
        self.spawn(self._hello())

    async def _hello(self) -> None:
        from ..models import KNOWN_MODELS

        if not await self._ready():
            return
        self.send({"type": "hello", "peer": self.id, "token": self.view_token,
                   "viewer": f"/viewer?token={self.view_token}", "settings": self.public_state(),
                   "models": list(KNOWN_MODELS), "max_upload_bytes": self.links.config.max_upload_bytes,
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
            msg_type = msg["type"]
            if msg_type == "settings":
                changes = msg.get("settings")
                if changes is None:
                    changes = {k: v for k, v in msg.items() if k != "type"}
                await self.apply(changes)
            elif msg_type == "upload":
                self._upload_begin(msg)
            elif msg_type == "upload-cancel":
                self._upload = None
            elif msg_type == "ping":
                self.send({"type": "pong", "t": msg.get("t") if isinstance(msg.get("t"), (int, float)) else None})
            elif msg_type == "stats":
                self.send_stats(force=True)
            else:
                raise ClientError(f"unknown message type {msg_type[:30]!r}: use settings, upload, ping or stats")
        except (ClientError, BackdropError) as exc:
            self.send_error(one_line(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not take the peer down; say so and log it
            log.exception("peer %s: message failed", self.id)
            self.send_error(f"internal error: {one_line(exc)}")

    async def apply(self, changes: Any) -> None:
        if not await self._ready():
            raise ClientError("processing is not running on the server for this stream")
        loop = asyncio.get_running_loop()
        # decoding an image or loading a model is slow: do it off the event loop and off the
        # peer's frame thread, so neither this peer's video nor anybody else's stalls
        await loop.run_in_executor(None, self.processor.update, changes)
        self.send({"type": "state", "settings": self.public_state()})

    # -- housekeeping
    def send_stats(self, force: bool = False) -> None:
        self.send({"type": "stats", **self.stats.snapshot(), "peers": self.links.publisher_count()})

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
        for viewer in list(self.viewers):
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
        self._last_good = None
        self.uploads.clear()
        shutil.rmtree(self.upload_dir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.stats.snapshot()}
