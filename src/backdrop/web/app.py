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
import time
from typing import Any

from ..engine.declaration import pipeline_declaration
from ..errors import BackdropError, OptionError, install_hint
from .config import (CONTENT_TYPES, MAX_OFFER_BYTES, STATIC_DIR, UPLOAD_TYPES, ServeError, ServerConfig,
                     content_policy, secure)
from .guard import RateLimiter, make_guard_middleware, make_upload_root
from .ice import loopback_ice
from .local import LocalRoutes
from .loop import loop_name
from .memory import process_memory, release_free_memory
from .peers import Peer, PeerLinks, ViewerPeer
from .publisher import PublisherPeer
from .protocol import ClientError, check_offer_body, check_sdp, check_secret, json_response, one_line, same_secret

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
        self.upload_root = make_upload_root()  # stale dirs of ours (a killed server's) go first
        self.started = time.monotonic()
        self.refused = 0
        self.guarded: dict[str, int] = {}  # refusals by the guard: host, origin, rate
        self.limiter = RateLimiter(self.config.offer_rate, self.config.offer_burst)
        self._static = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file() and p.suffix in CONTENT_TYPES} \
            if STATIC_DIR.is_dir() else {}
        self._ice = None
        self.frames_processed = 0  # by server-side pipelines, all peers: on-device streams add none
        self.links = PeerLinks(self.config, self.model, self.relay, self.upload_root, on_closed=self.forget,
                               on_released=self.collect_released, on_frame=self.count_frame,
                               publisher_count=lambda: len(self.publishers))
        self.local = LocalRoutes(self, *local_files())
        self._upscale_weights: dict | None = None
        self.app = self._make_app()

    # -- app
    def _make_app(self):
        from aiohttp import web

        @web.middleware
        async def headers(request, handler):
            try:
                resp = await handler(request)
            except web.HTTPException as exc:
                if exc.status >= 400 and (request.path in ("/offer", "/view") or request.path.startswith("/local")):
                    return secure(json_response({"error": exc.reason}, exc.status))
                secure(exc)  # 404, 405... are answered by aiohttp from the exception itself
                raise
            return secure(resp)

        def refuse(why: str) -> None:
            self.guarded[why] = self.guarded.get(why, 0) + 1

        self.refuse = refuse
        app = web.Application(client_max_size=MAX_OFFER_BYTES,
                              middlewares=[headers, make_guard_middleware(self.config, refuse)])
        app.router.add_get("/", self.page("index.html"))
        app.router.add_get("/viewer", self.page("viewer.html"))
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/favicon.ico", self.no_content)
        app.router.add_get("/config", self.get_config)
        app.router.add_get("/peers", self.get_peers)
        app.router.add_get("/stats", self.get_stats)
        app.router.add_get("/upscale/weights.json", self.get_upscale_weights)
        app.router.add_post("/offer", self.post_offer)
        app.router.add_post("/view", self.post_view)
        self.local.add(app.router)
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
        body = path.read_bytes()
        headers = {"Cache-Control": "no-cache"}
        if path.suffix == ".html":
            headers["Content-Security-Policy"] = content_policy(body)
        return web.Response(body=body, content_type=CONTENT_TYPES[path.suffix].split(";")[0],
                            charset="utf-8" if "charset" in CONTENT_TYPES[path.suffix] else None,
                            headers=headers)

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
                      "max_peers": self.config.max_peers, "process_on": self.config.process_on,
                      "local": self.local.describe(), "pipeline": pipeline_declaration(self.config.options)})

    async def get_upscale_weights(self, request):
        """The shipped sr-x2 network for the page's WebGL passes (gl-upscale.js), made from the
        package's weights file on first use: the page never carries a copy of the numbers."""
        if self._upscale_weights is None:
            from ..superres.network import SRWeights

            self._upscale_weights = SRWeights.load().to_json()
        return json_response(self._upscale_weights)

    def by_token(self, token: Any) -> PublisherPeer | None:
        """The publisher whose viewer token this is (constant-time compare), or None."""
        return next((p for p in self.publishers.values() if same_secret(p.view_token, token)), None)

    def _token(self, request) -> Any:
        """The viewer token a GET presents (``?token=`` or ``X-Backdrop-Token``); 400 if not text."""
        return check_secret(request.query.get("token") or request.headers.get("X-Backdrop-Token"))

    async def get_peers(self, request):
        # only the stream whose token is presented: ids of other peers are nobody's business
        try:
            token = self._token(request)
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)
        source = self.by_token(token)
        live = [source] if source is not None and source.processed is not None and not source.closed else []
        local = self.local.by_token(token) if isinstance(token, str) and token else None
        return json_response({"publishers": [p.describe() for p in live + ([local] if local else [])]})

    def stats(self) -> dict[str, Any]:
        return {"publishers": len(self.publishers), "viewers": len(self.viewers), "refused": self.refused,
                "guarded": dict(self.guarded), "tasks": len(asyncio.all_tasks()),
                "event_loop": loop_name(asyncio.get_running_loop()),
                "frames_processed": self.frames_processed, **self.local.stats(),
                "uptime_s": round(time.monotonic() - self.started, 1), **process_memory()}

    async def get_stats(self, request):
        try:
            source = self.by_token(self._token(request))
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)
        peers = [] if source is None else [source, *(v for v in self.viewers.values() if v.source is source)]
        return json_response({**self.stats(), "peers": [p.describe() for p in peers]})

    def charge(self, request) -> None:
        """One offer from this client address; 429 when its bucket is empty."""
        if not self.limiter.allow(request.remote or "?"):
            self.refuse("rate")
            raise ClientError("too many offers from this address; wait a second and try again", 429)

    def forget(self, peer: Peer) -> None:
        """A peer closed: it is no longer listed (``PeerLinks.on_closed``)."""
        self.publishers.pop(peer.id, None)
        self.viewers.pop(peer.id, None)

    def count_frame(self) -> None:
        """A server-side pipeline processed a frame (``PeerLinks.on_frame``)."""
        self.frames_processed += 1

    def collect_released(self) -> None:
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
            sdp, _ = check_offer_body(await self.read_body(request))
            check_sdp(sdp, send_video=True)  # before anything is built
            self.charge(request)
            if len(self.publishers) + self._reserved >= self.config.max_peers:
                self.refused += 1
                raise ClientError(f"the server is full: {self.config.max_peers} of {self.config.max_peers} "
                                  "peers are connected; try again later", 503)
            self._reserved += 1
            reserved = True
            peer = PublisherPeer(self.links)
            peer.pc.on("track", peer.attach)
            peer.pc.on("datachannel", peer.on_datachannel)
            await self._negotiate(peer, sdp)
            if peer.processed is None:
                raise ClientError("the offer carries no video track to process (is the camera on?)")
            # the expensive part (pipeline, model) only once the peer connects (PublisherPeer.on_connected)
            reply = {**await self._answer(peer), "token": peer.view_token,
                     "viewer": f"/viewer?token={peer.view_token}"}
            self.publishers[peer.id] = peer
            peer.spawn(peer._watchdog())
            log.info("peer %s joined (%d/%d)", peer.id, len(self.publishers), self.config.max_peers)
            return json_response(reply)
        except ClientError as exc:
            log.info("offer from %s refused (%d): %s", request.remote, exc.status, exc)
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return json_response({"error": str(exc)}, exc.status)
        except BackdropError as exc:  # a setting that cannot be honoured (the pipeline comes at connection)
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
            raw = await self.read_body(request)
            sdp, _ = check_offer_body(raw)
            body = json.loads(raw)  # parsed fine just above
            wanted, token = body.get("peer"), body.get("token")
            if wanted is not None and not isinstance(wanted, str):
                raise ClientError('"peer" must be a peer id string')
            check_secret(token)
            if not isinstance(token, str) or not token:
                self.refuse("token")
                raise ClientError('watching needs the stream\'s "token" (open the viewer link of the publishing page)',
                                  403)
            # charged, and the on-device caps checked, before the SDP is parsed (the one costly
            # check here): a flood of viewer offers that are refused costs a lookup each
            self.charge(request)
            local = self.local.by_token(token)
            if local is not None:  # an on-device stream: the browsers connect to each other
                self.local.check_room(local)
                check_sdp(sdp, send_video=False)
                return json_response(await self.local.relay_view(local, sdp))
            check_sdp(sdp, send_video=False)
            source = self.by_token(token)
            if source is None or source.processed is None or source.closed or (wanted and wanted != source.id):
                self.refuse("token")
                raise ClientError("no stream with this token (it may have ended)", 403)
            if len(self.viewers) >= self.config.max_viewers:
                self.refused += 1
                raise ClientError(f"too many viewers ({self.config.max_viewers}); try again later", 503)
            peer = ViewerPeer(self.links, source)
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
            log.info("viewer offer from %s refused (%d): %s", request.remote, exc.status, exc)
            if peer is not None:
                await peer.close(f"refused: {exc}")
            return json_response({"error": str(exc)}, exc.status)
        except BaseException:
            if peer is not None:
                await peer.close("error")
            raise

    async def read_body(self, request) -> bytes:
        from aiohttp import web

        if request.content_type != "application/json":  # text/plain would need no CORS preflight
            self.refuse("content-type")
            raise ClientError("an offer must be sent as Content-Type: application/json", 415)
        if request.content_length is not None and request.content_length > MAX_OFFER_BYTES:
            raise ClientError(f"offer too large ({request.content_length} bytes, limit {MAX_OFFER_BYTES})", 413)
        try:
            return await asyncio.wait_for(request.read(), self.config.body_timeout)
        except web.HTTPRequestEntityTooLarge:
            raise ClientError(f"offer too large (limit {MAX_OFFER_BYTES} bytes)", 413) from None
        except asyncio.TimeoutError:
            raise ClientError(f"the offer did not arrive within {self.config.body_timeout:g} s", 408) from None


def local_files():
    """The browser packages and browser-runnable models in the cache, each file verified now
    (nothing fetched here: ``backdrop serve`` fetches before it starts, so a server never waits on
    the network): ``({key: (package, {name: VerifiedFile})}, {model: VerifiedFile})``. A package
    or model that fails its check is left out, with one log line."""
    from ..models.registry import DEFAULT_FETCH, known_model, model_dir
    from .cache import CacheError, verify_pinned
    from .npm import verified_files
    from .packages import BROWSER_MODELS, TRACKER_MODELS, WEB_PACKAGES

    packages, models, refused = {}, {}, []
    for pkg in WEB_PACKAGES:
        try:
            packages[pkg.key] = (pkg, verified_files(pkg))
        except CacheError as exc:
            if str(exc) != "not fetched":
                refused.append(f"{pkg.name}@{pkg.version}: {exc}")
    if refused:
        log.warning("cached browser packages not served (backdrop models --fetch web fetches them again): %s",
                    "; ".join(refused))
    for name in (*BROWSER_MODELS, *TRACKER_MODELS):  # the picker's segmenters, the person tracker's models
        if name in DEFAULT_FETCH:
            km = known_model(name)
            try:
                models[name] = verify_pinned(model_dir(), km.filename, km.sha256)
            except CacheError as exc:
                log.debug("model %s is not served to pages: %s", name, exc)
    return packages, models
