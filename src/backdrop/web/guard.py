"""What stands between the network and the handlers: Host/Origin rules, offer rate limits,
socket bounds, one-line logs for malformed HTTP, and stale upload dirs.

- **Host**: only a Host header naming the address the server is bound to (127.0.0.1,
  ``localhost``, ``[::1]`` on loopback), any IP literal when bound to a wildcard address, or a
  name given with ``--allow-host``. Anything else is 403: a DNS-rebinding page reaches us under
  its own name, and is refused.
- **Origin**: a request that carries an Origin other than our own is 403, so no other site can
  drive the server from a visitor's browser; offers must also be ``application/json`` (which a
  cross-site page cannot send without a preflight we never answer).
- **Rate**: offers are charged to a token bucket per client address (429 when empty).
- **Sockets**: a header timeout (aiohttp's keep-alive timer closes a connection whose request
  headers are not complete in time) and a cap on open connections; over the cap, the oldest
  connections that have no request in progress are closed first, then those whose request body
  is still trickling in, then those whose response the client is still being sent (a reader that
  does not read), so slow sockets cannot lock a real client out.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from .protocol import json_response

log = logging.getLogger(__name__)
UPLOAD_PREFIX = "backdrop-uploads-"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}


_HOST = re.compile(r"(?:\[(?P<ip6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9._-]+))(?::(?P<port>[0-9]{1,5}))?")


def split_host(value: str) -> str:
    """The host part of a Host header (lower case, no port, no brackets), or "" when the header
    is not ``name[:port]`` or ``[IPv6][:port]`` exactly: ``[::1].evil.example`` is not ``::1``
    (taking what stood between the brackets let that name through), and neither is anything with
    spaces, ``@``, a second port or an empty name."""
    m = _HOST.fullmatch(value.strip().lower())
    if m is None:
        return ""
    if m["ip6"] is not None:
        try:
            return str(ipaddress.IPv6Address(m["ip6"]))
        except ValueError:
            return ""
    return m["name"].rstrip(".")


def allowed_hosts(bind: str, extra=()) -> tuple[set[str], bool]:
    """(names accepted in the Host header, whether any IP literal is accepted)."""
    names = {split_host(h) for h in extra if h} - {""}  # ServerConfig.validate refuses a malformed one
    bind = bind.strip().lower().strip("[]")
    any_ip = False
    try:
        addr = ipaddress.ip_address(bind)
    except ValueError:
        addr = None
        names.add(bind)  # bound by name (e.g. "localhost")
    if bind == "localhost" or (addr is not None and addr.is_loopback):
        names |= LOOPBACK_NAMES
    elif addr is not None and addr.is_unspecified:
        names |= LOOPBACK_NAMES
        any_ip = True  # an IP literal cannot be rebound to another address by DNS
    elif addr is not None:
        names.add(str(addr))
    return names, any_ip


def host_ok(header: str | None, names: set[str], any_ip: bool) -> bool:
    host = split_host(header or "")
    if not host:
        return False
    if host in names:
        return True
    if any_ip:
        with contextlib.suppress(ValueError):
            ipaddress.ip_address(host)
            return True
    return False


def make_guard_middleware(config, refuse):
    """aiohttp middleware: Host and Origin checks before any handler runs."""
    from aiohttp import web

    names, any_ip = allowed_hosts(config.host, config.allow_hosts)

    @web.middleware
    async def guard(request, handler):
        if not host_ok(request.headers.get("Host"), names, any_ip):
            refuse("host")
            return json_response({"error": "this Host is not allowed (start with --allow-host NAME to add it)"}, 403)
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/").lower() != f"{request.scheme}://{request.host}".lower():
            refuse("origin")
            return json_response({"error": "cross-origin requests are not allowed"}, 403)
        try:
            return await handler(request)
        except (ConnectionError, RuntimeError):
            transport = request.transport
            if transport is None or transport.is_closing():
                # the client hung up, or was evicted over the connection cap, while its body was
                # awaited ("Connection closed."): nobody to answer, and no malformed request to log
                log.debug("%s %s: the connection closed mid-request", request.method, request.path)
                return json_response({"error": "the connection closed"}, 400)
            raise

    return guard


class RateLimiter:
    """A token bucket per client address: ``burst`` at once, ``rate`` per second after that."""

    def __init__(self, rate: float, burst: int, max_clients: int = 4096):
        self.rate, self.burst, self.max_clients = rate, burst, max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > self.max_clients:  # forget full buckets first; memory stays bounded
            full = [k for k, (t, ts) in self._buckets.items() if t + (now - ts) * self.rate >= self.burst]
            for k in full or list(self._buckets)[: len(self._buckets) // 2]:
                self._buckets.pop(k, None)
        return ok


def _body_pending(request) -> bool:
    """A request whose headers came but whose body is still arriving (a slow body, or a stall)."""
    try:
        return not request.content.is_eof()
    except Exception:
        return False


def limit_connections(server, cap: int) -> None:
    """Cap the open connections of an aiohttp ``web.Server``; evict idle/slow ones first.

    Over the cap, the oldest connections without a request are closed first, then the oldest
    whose request body is still arriving (an offer body sent a byte at a time is no real client:
    an offer is a few KB), then the oldest whose response is still being written (a client that
    does not read a 9 MB runtime file holds its connection for as long as it likes). A request
    whose handler is running is kept, and when every connection is such a one, the newcomer is
    refused instead (the long polls of on-device pages are such requests: ``local.py`` bounds
    them). Connections already being closed count for nothing.
    """
    original = server.connection_made

    def connection_made(handler, transport):
        original(handler, transport)
        if len(server._connections) <= cap:  # the newcomer and any closing ones included
            return
        # Over the cap this runs for every new connection (~250/s under benchmarks/serve_soak.py's
        # mix), so the pass is plain attribute reads; whose body is still arriving is asked only
        # when the idle ones are too few (it was a third of the event loop's time in that soak).
        idle, running, sending, live = [], [], [], 0
        for h in server._connections:
            if h is handler or getattr(h, "_force_close", False) or getattr(h, "transport", None) is None:
                continue  # the newcomer, or closed already (it leaves at the next loop turn)
            live += 1
            request = getattr(h, "_current_request", None)  # set while the handler runs
            if request is None:
                # the handler returned and the response is being written, or no request at all
                (sending if getattr(h, "_request_in_progress", False) else idle).append(h)
            else:
                running.append((request, h))
        excess = live + 1 - cap
        if excess <= 0:
            return
        victims = idle[:excess]  # oldest first within each kind
        if len(victims) < excess:
            receiving = [h for request, h in running if _body_pending(request)]
            victims = (idle + receiving + sending)[:excess]
        for h in victims:
            with contextlib.suppress(Exception):
                if h in sending:  # close() would wait for a write buffer that client never reads
                    h.transport.abort()
                h.force_close()
        if len(victims) < excess:  # everything busy: refuse the newcomer instead
            # after aiohttp has started its handler task: closed here, at once, that task would
            # start on a torn-down handler and die with an AssertionError traceback
            asyncio.get_running_loop().call_soon(_close_quietly, handler)

    server.connection_made = connection_made


def _close_quietly(handler) -> None:
    with contextlib.suppress(Exception):
        handler.force_close()


def _client_went_away(exc: BaseException | None) -> bool:
    """A connection the client closed while aiohttp still read from it: a reset, or the
    ``RuntimeError("Connection closed.")`` its lingering close (the unread rest of a body answered
    early, a 413 or 415 say) raises when the client hangs up first, which it logged as "Unhandled
    exception" (one warning in ten soak runs under the attack mix, 2026-12-07)."""
    if isinstance(exc, ConnectionError):
        return True
    return type(exc) is RuntimeError and str(exc) == "Connection closed."


class OneLineLogger(logging.LoggerAdapter):
    """aiohttp's server logger, minus tracebacks: a malformed request is one warning line.

    aiohttp logs bad requests with ``exception()`` (a traceback) or, for garbage in the request
    line, ``debug(..., exc_info=...)``; both become one line here, at most 20 per 10 s.
    """

    _window = 0.0
    _count = 0

    def _one_line(self, msg, args, exc_info) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if _client_went_away(exc):  # nothing wrong with the request or the server: no warning
            self.logger.debug("%s: the client closed the connection", msg)
            return
        now = time.monotonic()
        if now - self._window > 10.0:
            if self._count > 20:
                self.logger.warning("%d more malformed requests were not logged", self._count - 20)
            self._window, self._count = now, 0
        self._count += 1
        if self._count > 20:
            return
        text = " ".join(str(exc).split())[:160] if exc else ""
        detail = f": {type(exc).__name__}{': ' + text if text else ''}" if exc else ""
        with contextlib.suppress(Exception):
            msg = msg % args if args else msg
        self.logger.warning("%s%s", msg, detail)

    def exception(self, msg, *args, exc_info=True, **kwargs):
        self._one_line(msg, args, exc_info)

    def error(self, msg, *args, exc_info=None, **kwargs):
        self._one_line(msg, args, exc_info)

    def debug(self, msg, *args, exc_info=None, **kwargs):
        if isinstance(exc_info, BaseException):
            self._one_line(msg, args, exc_info)
        else:
            self.logger.debug(msg, *args)


def server_logger() -> OneLineLogger:
    return OneLineLogger(logging.getLogger("backdrop.web.http"), {})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def make_upload_root() -> Path:
    """A fresh upload dir, after removing stale ones of ours (their server is gone)."""
    base = Path(tempfile.gettempdir())
    me = os.getuid() if hasattr(os, "getuid") else None
    for d in base.glob(UPLOAD_PREFIX + "*"):
        with contextlib.suppress(OSError, ValueError):
            st = d.lstat()
            if not d.is_dir() or d.is_symlink() or (me is not None and st.st_uid != me):
                continue
            parts = d.name[len(UPLOAD_PREFIX):].split("-")
            if len(parts) >= 2 and parts[0].isdigit():  # backdrop-uploads-<pid>-<random>
                stale = not _alive(int(parts[0]))
            else:  # an older server's dir: stale after an hour
                stale = time.time() - st.st_mtime > 3600
            if stale:
                shutil.rmtree(d, ignore_errors=True)
                log.info("removed stale upload dir %s", d.name)
    return Path(tempfile.mkdtemp(prefix=f"{UPLOAD_PREFIX}{os.getpid()}-"))
