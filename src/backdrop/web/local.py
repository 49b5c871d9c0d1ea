"""On-device mode, server side: the runtime files, the model files, and signalling only.

A page in on-device mode segments and composites in the browser (``static/local.js``); the server
never sees its frames. It serves the npm runtime out of the cache (:mod:`.npm`), the model file the
Python side already caches, and relays the WebRTC offer/answer between a viewer and the local
publisher, so the processed track goes browser to browser. The publisher long-polls
``GET /local/{id}/next`` for viewers' offers and posts its answers to ``/local/{id}/answer``; its
``secret`` (known to its page only) authorises both, and viewers need its ``token`` as for a
server-side stream.

What one client can hold is bounded: a page keeps one long poll open (a newer poll of the same
page answers its older one at once, 204: the older is most likely a connection that died; at
most ``POLLS_PER_PUBLISHER``), all pages together at most one per registered stream (over that,
the publisher holding the most polls loses its oldest), and at most ``MAX_PER_ADDRESS`` streams
are registered from one address (a newer one replaces that address's oldest stream that is not
polling, else 429). Registrations are also charged to the offer rate limit. So long polls, which
the connection cap cannot evict (they are requests being served), never hold more than a
quarter of ``max_connections``. A viewer's offer waits for the page's answer (up to
``ANSWER_SECONDS``) on a connection the cap cannot evict either, so those waits are capped too:
``VIEWS_PER_STREAM`` per stream and an eighth of ``max_connections`` in all (503 beyond).

Runtime and model files are served only while they are what was fetched (:mod:`.cache`):
checked at start, and again each time one is opened; ``/config`` offers on-device processing
only while every file it needs passes, so a page falls back to the server path instead of
failing on an import.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .cache import CacheError, file_response
from .packages import BROWSER_MODELS, TRACKER_MODELS
from .protocol import ClientError, check_secret, json_response, same_secret

log = logging.getLogger(__name__)

MAX_LOCAL_PUBLISHERS = 64     # a local publisher costs a queue and two strings (and at most 64 long polls)
MAX_PER_ADDRESS = 16          # on-device streams registered from one client address
POLLS_PER_PUBLISHER = 2       # long polls one page may hold at once (it needs one)
POLL_SECONDS = 20.0           # one long poll waits this long for a viewer
GONE_AFTER = 45.0             # a publisher that has not polled for this long has left
IDLE_GRACE = 2.0              # a page not polling, unseen this long, may make room for a new one
ANSWER_SECONDS = 15.0         # a viewer waits this long for the publisher's answer
VIEWS_PER_STREAM = 4          # viewers' offers waiting for one page's answer at once (a live page answers in ms)
VIEWS_SHARE = 8               # ... and in all at most max_connections / VIEWS_SHARE (32 of 256)
MAX_WAITING = 8               # viewers' offers queued for one publisher
MAX_STATS_KEYS = 32           # numbers a page may report about itself
GONE = "gone"                 # what a long poll gets when its stream is dropped
RUNTIME_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
                 ".tflite": "application/octet-stream", ".binarypb": "application/octet-stream",
                 ".data": "application/octet-stream", ".onnx": "application/octet-stream"}


@dataclass
class LocalPublisher:
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    view_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    address: str = "?"
    created: float = field(default_factory=time.monotonic)
    seen: float = field(default_factory=time.monotonic)
    offers: deque = field(default_factory=deque)      # (viewer, sdp) for the next poll, oldest first
    polls: list = field(default_factory=list)         # a future per long poll in progress, oldest first
    answers: dict[str, asyncio.Future] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    closed: bool = False
    role = "local"

    @property
    def processed(self):  # what ``by_token`` callers test: a local stream is always "there"
        return True

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "where": "browser", "fps": self.stats.get("fps"),
                "age_s": round(time.monotonic() - self.created, 1)}


class LocalRoutes:
    """The routes of on-device mode, added to the server's router."""

    def __init__(self, server, packages, models):
        self.server = server
        self.packages = packages  # key -> (WebPackage, {file: VerifiedFile}): verified at start
        self.models = models      # name -> VerifiedFile (browser-runnable, sha256 pinned in the registry)
        self.publishers: dict[str, LocalPublisher] = {}
        # streams, and long polls in all, that may exist at once: a quarter of the connections at most
        self.max_publishers = min(MAX_LOCAL_PUBLISHERS, max(2, server.config.max_connections // 4))
        self.max_views = max(VIEWS_PER_STREAM, server.config.max_connections // VIEWS_SHARE)
        self.views_waiting = 0    # viewers' offers waiting for a page's answer, all streams
        self._warned: set[str] = set()

    def add(self, router) -> None:
        router.add_get("/runtime/{key}/{path:.+}", self.runtime)
        router.add_get("/model/{name}", self.model)
        router.add_post("/local", self.register)
        router.add_get("/local/{id}/next", self.next_offer)
        router.add_post("/local/{id}/answer", self.answer)
        router.add_post("/local/{id}/stats", self.report)

    # -- files
    def _intact(self, files) -> bool:
        """Whether every file still is what was fetched (an open and an ``fstat`` each; hashed
        again only if one changed); the first time one is not, one log line."""
        for vf in files:
            why = vf.problem()
            if why:
                if vf.rel not in self._warned:
                    self._warned.add(vf.rel)
                    log.warning("not serving %s any more: %s", vf.rel, why)
                return False
        return True

    def describe(self) -> dict[str, Any]:
        from .packages import WEB_PACKAGES  # (at call time: tests replace it)

        runtimes = {k: pkg for k, (pkg, files) in self.packages.items() if self._intact(files.values())}
        models = [n for n, vf in self.models.items() if self._intact([vf])]
        needed = all(p.key in runtimes for p in WEB_PACKAGES if not p.optional)
        tracker = [n for n in self.models if n in TRACKER_MODELS]  # the person tracker's: all of them or none
        return {"available": needed and any(n in BROWSER_MODELS for n in models),
                "models": [n for n in models if n in BROWSER_MODELS],  # the picker's segmenters
                "tracker": tracker if all(n in models for n in tracker) else [],
                "runtimes": {k: f"{p.name}@{p.version}" for k, p in runtimes.items()}}

    def _send(self, vf):
        from aiohttp import web

        try:
            f = vf.open()
        except CacheError:
            self._intact([vf])  # says why, once
            raise web.HTTPNotFound() from None
        suffix = "." + vf.rel.rsplit(".", 1)[-1]
        return file_response()(f, vf.size, {"Content-Type": RUNTIME_TYPES.get(suffix, "application/octet-stream"),
                                             "Cache-Control": "public, max-age=31536000, immutable",
                                             "Cross-Origin-Resource-Policy": "same-origin"})

    async def runtime(self, request):
        from aiohttp import web

        entry = self.packages.get(request.match_info["key"])
        vf = entry[1].get(request.match_info["path"]) if entry else None
        if vf is None:  # exact names only: no traversal, no listing
            raise web.HTTPNotFound()
        return self._send(vf)

    async def model(self, request):
        from aiohttp import web

        vf = self.models.get(request.match_info["name"])
        if vf is None:
            raise web.HTTPNotFound()
        return self._send(vf)

    # -- signalling
    def _expire(self) -> None:
        now = time.monotonic()
        for pid, pub in list(self.publishers.items()):
            if now - pub.seen > GONE_AFTER:
                self.drop(pub)

    def drop(self, pub: LocalPublisher, why: str = "left") -> None:
        pub.closed = True
        self.publishers.pop(pub.id, None)
        for fut in pub.answers.values():
            if not fut.done():
                fut.set_exception(ClientError("the stream ended", 410))
        for fut in pub.polls:
            if not fut.done():
                fut.set_result(GONE)
        pub.polls.clear()
        pub.offers.clear()
        log.info("local peer %s %s", pub.id, why)

    def _idle(self, pubs, now: float) -> LocalPublisher | None:
        """The stream among ``pubs`` seen longest ago that has no poll open (a closed page), if any."""
        idle = [p for p in pubs if not p.polls and now - p.seen > IDLE_GRACE]
        return min(idle, key=lambda p: p.seen) if idle else None

    def by_token(self, token: str) -> LocalPublisher | None:
        self._expire()
        return next((p for p in self.publishers.values() if same_secret(p.view_token, token)), None)

    def _publisher(self, request, secret: Any) -> LocalPublisher:
        check_secret(secret, "secret")
        pub = self.publishers.get(request.match_info["id"])
        if pub is None or not same_secret(pub.secret, secret):
            raise ClientError("no such on-device stream (it may have timed out; reload the page)", 404)
        pub.seen = time.monotonic()
        return pub

    async def _json(self, request) -> dict[str, Any]:
        raw = await self.server.read_body(request)
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
            self.server.charge(request)
            self._expire()
            now, address = time.monotonic(), request.remote or "?"
            mine = [p for p in self.publishers.values() if p.address == address]
            if len(mine) >= MAX_PER_ADDRESS:
                old = self._idle(mine, now)
                if old is None:
                    self.server.refuse("local")
                    raise ClientError(f"too many on-device streams from this address ({MAX_PER_ADDRESS}); "
                                      "close some pages and try again", 429)
                self.drop(old, "replaced by a newer stream from the same address")
            if len(self.publishers) >= self.max_publishers:
                old = self._idle(self.publishers.values(), now)
                if old is None:
                    self.server.refuse("local")
                    raise ClientError("too many on-device streams on this server; try again later", 503)
                self.drop(old, "replaced by a newer stream (it was not polling)")
            pub = LocalPublisher(address=address)
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
            self.server.refuse("secret")
            return json_response({"error": str(exc)}, exc.status)
        item = self._take(pub)
        if item is None:
            self._make_room(pub)
            fut = asyncio.get_running_loop().create_future()
            pub.polls.append(fut)
            try:
                await asyncio.wait({fut}, timeout=POLL_SECONDS)
            finally:
                with contextlib.suppress(ValueError):
                    pub.polls.remove(fut)
                if not fut.done():
                    fut.set_result(None)
            item = fut.result()
            if isinstance(item, tuple) and (request.transport is None or request.transport.is_closing()):
                self._give(pub, item, first=True)  # the page went away mid-poll: keep it for the next one
                item = None
        pub.seen = time.monotonic()
        if item == GONE:
            return json_response({"error": "this on-device stream was closed (reload the page)"}, 404)
        if item is None:  # timed out, or a newer poll of the page took over
            return web.Response(status=204, headers={"Cache-Control": "no-store"})
        viewer, sdp = item
        return json_response({"viewer": viewer, "sdp": sdp, "type": "offer"})

    def _take(self, pub: LocalPublisher):
        """The oldest queued offer whose viewer still waits, or None."""
        while pub.offers:
            viewer, sdp = pub.offers.popleft()
            fut = pub.answers.get(viewer)
            if fut is not None and not fut.done():
                return viewer, sdp
        return None

    def _give(self, pub: LocalPublisher, item, first: bool = False) -> bool:
        """Hand a viewer's offer to the page's newest waiting poll, or queue it (False: queue full)."""
        while pub.polls:
            fut = pub.polls.pop()
            if not fut.done():
                fut.set_result(item)
                return True
        if not first and len(pub.offers) >= MAX_WAITING:
            return False
        (pub.offers.appendleft if first else pub.offers.append)(item)
        return True

    def _make_room(self, pub: LocalPublisher) -> None:
        """Before ``pub`` opens one more poll: its own oldest goes over ``POLLS_PER_PUBLISHER``, and
        over the server's cap the oldest poll of whoever holds the most (answered 204 at once)."""
        if len(pub.polls) >= POLLS_PER_PUBLISHER:
            _release(pub.polls.pop(0))
        if sum(len(p.polls) for p in self.publishers.values()) >= self.max_publishers:
            richest = max(self.publishers.values(), key=lambda p: len(p.polls))
            victim = richest if len(richest.polls) > 1 or not pub.polls else pub
            if victim.polls:
                _release(victim.polls.pop(0))

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
                kept = {}
                for k, v in stats.items():
                    if len(kept) >= MAX_STATS_KEYS:
                        break
                    if isinstance(k, str) and len(k) < 32 and isinstance(v, (int, float, str)) and len(str(v)) < 64:
                        kept[k] = v
                pub.stats = kept
            return json_response({"ok": True})
        except ClientError as exc:
            return json_response({"error": str(exc)}, exc.status)

    def check_room(self, pub: LocalPublisher) -> None:
        """503 unless one more viewer's offer may wait for ``pub``'s answer: each wait holds a
        connection the cap cannot evict, so at most ``VIEWS_PER_STREAM`` per stream and
        ``max_views`` in all (a page that never answers holds its own few only)."""
        if len(pub.answers) >= VIEWS_PER_STREAM:
            self.server.refuse("views")
            raise ClientError("too many viewers are connecting to this stream at once; try again in a few "
                              "seconds", 503)
        if self.views_waiting >= self.max_views:
            self.server.refuse("views")
            raise ClientError("too many viewers are connecting at once; try again in a few seconds", 503)

    async def relay_view(self, pub: LocalPublisher, sdp: str) -> dict[str, Any]:
        """A viewer's offer for an on-device stream: hand it to the publisher, wait for its answer."""
        self.check_room(pub)
        viewer = secrets.token_hex(6)
        fut = asyncio.get_running_loop().create_future()
        pub.answers[viewer] = fut
        self.views_waiting += 1
        try:
            if not self._give(pub, (viewer, sdp)):
                raise ClientError("too many viewers are connecting to this stream; try again", 503)
            try:
                answer = await asyncio.wait_for(fut, ANSWER_SECONDS)
            except asyncio.TimeoutError:
                raise ClientError("the publishing page did not answer (is it still open?)", 504) from None
        finally:
            self.views_waiting -= 1
            pub.answers.pop(viewer, None)
        return {"sdp": answer, "type": "answer", "source": pub.id, "where": "browser"}

    def stats(self) -> dict[str, Any]:
        self._expire()
        return {"local_publishers": len(self.publishers), "local_views_waiting": self.views_waiting,
                "local_polls": sum(len(p.polls) for p in self.publishers.values())}


def _release(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
