"""The aiohttp application: routes, the two offer handlers, startup and shutdown.

This is the counterpart of aiortc's ``examples/server/server.py``: :class:`BackdropServer` serves
the page, answers ``POST /offer`` (a publisher) and ``POST /view`` (a viewer), and closes every
peer on shutdown. The hardening lives beside it: limits in :mod:`.config`, offer checks in
:mod:`.protocol`, peers in :mod:`.peers`, loopback ICE in :mod:`.ice`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import BackdropError, OptionError, install_hint
from .config import CONTENT_TYPES, MAX_OFFER_BYTES, STATIC_DIR, UPLOAD_TYPES, ServeError, ServerConfig
from .ice import loopback_ice
from .memory import process_memory, release_free_memory
from .peers import Peer, PublisherPeer, ViewerPeer
from .protocol import ClientError, check_offer_body, json_response, one_line

log = logging.getLogger(__name__)


class BackdropServer:
    """The aiohttp application and the peers it holds."""

    def __init__(self, config: ServerConfig | None = None):
        try:
            import aiohttp  # noqa: F401
            import aiortc  # noqa: F401
        except ImportError:
            raise ServeError(f"backdrop serve needs the [web] extra: {install_hint('web')}") from None
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
                    return json_response({"error": exc.reason}, exc.status)
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

        return json_response({"models": list(KNOWN_MODELS), "model": self.model, "background": self.config.background,
                      "max_upload_bytes": self.config.max_upload_bytes, "upload_types": sorted(UPLOAD_TYPES),
                      "max_peers": self.config.max_peers})

    async def get_peers(self, request):
        return json_response({"publishers": [p.describe() for p in self.publishers.values() if p.processed is not None]})

    def stats(self) -> dict[str, Any]:
        return {"publishers": len(self.publishers), "viewers": len(self.viewers), "refused": self.refused,
                "tasks": len(asyncio.all_tasks()), "uptime_s": round(time.monotonic() - self.started, 1),
                **process_memory()}

    async def get_stats(self, request):
        return json_response({**self.stats(), "peers": [p.describe() for p in [*self.publishers.values(),
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
            raise ClientError(f"cannot use this offer: {one_line(exc, 160)}") from None

    async def _answer(self, peer: Peer) -> dict[str, Any]:
        try:
            answer = await peer.pc.createAnswer()
            await peer.pc.setLocalDescription(answer)
        except Exception as exc:
            log.debug("cannot answer", exc_info=True)
            raise ClientError(f"cannot answer this offer: {one_line(exc, 160)}") from None
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
            return json_response(reply)
        except ClientError as exc:
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return json_response({"error": str(exc)}, exc.status)
        except BackdropError as exc:  # e.g. the model cannot be loaded
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return json_response({"error": str(exc)}, 500 if not isinstance(exc, OptionError) else 400)
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
            return json_response({**reply, "source": source.id})
        except ClientError as exc:
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return json_response({"error": str(exc)}, exc.status)
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
