"""On-device mode, server side: the runtime files, the model files, and signalling only.

A page in on-device mode segments and composites in the browser (``static/local.js``); the server
never sees its frames. It serves the npm runtime out of the cache (:mod:`.npm`), the model file the
Python side already caches, and relays the WebRTC offer/answer between a viewer and the local
publisher, so the processed track goes browser to browser. The publisher long-polls
``GET /local/{id}/next`` for viewers' offers and posts its answers to ``/local/{id}/answer``; its
``secret`` (known to its page only) authorises both, and viewers need its ``token`` as for a
server-side stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from .protocol import ClientError, json_response

log = logging.getLogger(__name__)

MAX_LOCAL_PUBLISHERS = 64     # a local publisher costs a queue and two strings
POLL_SECONDS = 20.0           # one long poll waits this long for a viewer
GONE_AFTER = 45.0             # a publisher that has not polled for this long has left
ANSWER_SECONDS = 15.0         # a viewer waits this long for the publisher's answer
MAX_WAITING = 8               # viewers' offers queued for one publisher
RUNTIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                 ".tflite": "application/octet-stream", ".binarypb": "application/octet-stream",
                 ".data": "application/octet-stream", ".onnx": "application/octet-stream"}


@dataclass
class LocalPublisher:
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    view_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    offers: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(MAX_WAITING))
    answers: dict[str, asyncio.Future] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    kind = "local"

    @property
    def processed(self):  # what ``by_token`` callers test: a local stream is always "there"
        return True

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "where": "browser", "fps": self.stats.get("fps"),
                "age_s": round(time.monotonic() - self.created, 1)}


def _secret_ok(pub: LocalPublisher, secret: Any) -> bool:
    return isinstance(secret, str) and secrets.compare_digest(pub.secret.encode(), secret.encode()[:256])


class LocalRoutes:
    """The routes of on-device mode, added to the server's router."""

    def __init__(self, server, packages, models):
        self.server = server
        self.packages = {p.key: p for p in packages}   # only fetched ones are served
        self.models = models                         # name -> cached path (browser-runnable only)
        self.publishers: dict[str, LocalPublisher] = {}

    def add(self, router) -> None:
        router.add_get("/runtime/{key}/{path:.+}", self.runtime)
        router.add_get("/model/{name}", self.model)
        router.add_post("/local", self.register)
        router.add_get("/local/{id}/next", self.next_offer)
        router.add_post("/local/{id}/answer", self.answer)
        router.add_post("/local/{id}/stats", self.report)

    @property
    def available(self) -> bool:
        return bool(self.packages) and bool(self.models)

    def describe(self) -> dict[str, Any]:
        return {"available": self.available, "models": list(self.models),
                "runtimes": {k: f"{p.name}@{p.version}" for k, p in self.packages.items()}}

    # -- files
    def _send_file(self, path, suffix: str):
        from aiohttp import web

        return web.FileResponse(path, headers={"Content-Type": RUNTIME_TYPES.get(suffix, "application/octet-stream"),
                                               "Cache-Control": "public, max-age=31536000, immutable",
                                               "Cross-Origin-Resource-Policy": "same-origin"})

    async def runtime(self, request):
        from aiohttp import web

        from .npm import package_dir

        pkg = self.packages.get(request.match_info["key"])
        rel = request.match_info["path"]
        if pkg is None or rel not in pkg.files:  # exact names only: no traversal, no listing
            raise web.HTTPNotFound()
        return self._send_file(package_dir(pkg) / rel, "." + rel.rsplit(".", 1)[-1])

    async def model(self, request):
        from aiohttp import web

        path = self.models.get(request.match_info["name"])
        if path is None:
            raise web.HTTPNotFound()
        return self._send_file(path, path.suffix)

    # -- signalling
    def _expire(self) -> None:
        now = time.monotonic()
        for pid, pub in list(self.publishers.items()):
            if now - pub.seen > GONE_AFTER:
                self.drop(pub)

    def drop(self, pub: LocalPublisher) -> None:
        pub.closed = True
        self.publishers.pop(pub.id, None)
        for fut in pub.answers.values():
            if not fut.done():
                fut.set_exception(ClientError("the stream ended", 410))
        log.info("local peer %s left", pub.id)

    def by_token(self, token: str) -> LocalPublisher | None:
        self._expire()
        for pub in self.publishers.values():
            if secrets.compare_digest(pub.view_token.encode(), token.encode()[:256]):
                return pub
        return None

    def _publisher(self, request, secret: Any) -> LocalPublisher:
        pub = self.publishers.get(request.match_info["id"])
        if pub is None or not _secret_ok(pub, secret):
            raise ClientError("no such on-device stream (it may have timed out; reload the page)", 404)
        pub.seen = time.monotonic()
        return pub

    async def _json(self, request) -> dict[str, Any]:
        raw = await self.server._body(request)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ClientError("body is not JSON") from None
        if not isinstance(body, dict):
            raise ClientError("body must be a JSON object")
        return body

    async def register(self, request):
        try:
            await self._json(request)
            self.server._charge(request)
            self._expire()
            if len(self.publishers) >= MAX_LOCAL_PUBLISHERS:
                raise ClientError("too many on-device streams on this server; try again later", 503)
            pub = LocalPublisher()
            self.publishers[pub.id] = pub
            log.info("local peer %s joined (%d on-device)", pub.id, len(self.publishers))
            return json_response({"id": pub.id, "secret": pub.secret, "token": pub.view_token,
                                  "viewer": f"/viewer?token={pub.view_token}", "poll_s": POLL_SECONDS})
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def next_offer(self, request):
        from aiohttp import web

        try:
            pub = self._publisher(request, request.query.get("secret") or request.headers.get("X-Backdrop-Secret"))
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)
        try:
            viewer, sdp = await asyncio.wait_for(pub.offers.get(), POLL_SECONDS)
        except asyncio.TimeoutError:
            pub.seen = time.monotonic()
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        pub.seen = time.monotonic()
        return json_response({"viewer": viewer, "sdp": sdp, "type": "offer"})

    async def answer(self, request):
        try:
            body = await self._json(request)
            pub = self._publisher(request, body.get("secret"))
            fut = pub.answers.get(body.get("viewer") if isinstance(body.get("viewer"), str) else "")
            sdp = body.get("sdp")
            if fut is None or fut.done():
                raise ClientError("no viewer is waiting for this answer", 404)
            if body.get("type") != "answer" or not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0"):
                raise ClientError('send {"type": "answer", "sdp": "v=0..."}')
            fut.set_result(sdp)
            return json_response({"ok": True})
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def report(self, request):
        """The page's own numbers (fps, frame ms), shown to viewers and in /stats."""
        try:
            body = await self._json(request)
            pub = self._publisher(request, body.get("secret"))
            stats = body.get("stats")
            if isinstance(stats, dict):
                pub.stats = {k: v for k, v in stats.items()
                             if isinstance(k, str) and len(k) < 32 and isinstance(v, (int, float, str))
                             and len(str(v)) < 64}
            return json_response({"ok": True})
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)

    async def relay_view(self, pub: LocalPublisher, sdp: str) -> dict[str, Any]:
        """A viewer's offer for an on-device stream: hand it to the publisher, wait for its answer."""
        viewer = secrets.token_hex(6)
        fut = asyncio.get_running_loop().create_future()
        pub.answers[viewer] = fut
        try:
            try:
                pub.offers.put_nowait((viewer, sdp))
            except asyncio.QueueFull:
                raise ClientError("too many viewers are connecting to this stream; try again", 503) from None
            try:
                answer = await asyncio.wait_for(fut, ANSWER_SECONDS)
            except asyncio.TimeoutError:
                raise ClientError("the publishing page did not answer (is it still open?)", 504) from None
        finally:
            pub.answers.pop(viewer, None)
        return {"sdp": answer, "type": "answer", "source": pub.id, "where": "browser"}

    def stats(self) -> dict[str, Any]:
        self._expire()
        return {"local_publishers": len(self.publishers)}
