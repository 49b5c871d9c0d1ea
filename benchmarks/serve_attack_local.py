"""The on-device part of ``benchmarks/serve_attack.py``'s mix: the routes of ``web/local.py``.

A mixin of :class:`serve_attack.Attack` (it uses its ``_raw``, ``_send``, ``_fire`` and counters):

* **on-device routes** (``--local`` per second): POST /local registrations (JSON, ``text/plain``,
  foreign Origin), answers and stats with wrong secrets or junk bodies, long polls with a wrong
  secret, GET /runtime and /model (real files read 64 KB then dropped, unknown and traversing names);
* **long polls** (``--polls`` open) on the registered streams, reopened ``--reconnect`` s after an answer;
* **slow readers** (``--readers``): GET of the 9 MB runtime .wasm with a 4 KB buffer, never read;
* **held viewer offers** (``--views`` at once, from ``--addresses`` loopback addresses, each with
  its own offer bucket): POST /view with the token of a stream the attacker registered, whose
  page (the attacker's long polls) takes the offer and never answers, so each waits for the
  server's answer timeout; reopened ``--reconnect`` s after an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
from collections import Counter

JUNK = [b"", b"not json", b"[]", b"null", b'{"type": "offer"}', b'{"sdp": 5, "type": "offer"}',
        b'{"sdp": "hello", "type": "offer"}', b"\xff\xfe\x00garbage", b"[" * 20000,
        b'{"sdp": "v=0\\r\\nm=video 9 UDP/TLS/RTP/SAVPF 96\\r\\n", "type": "offer"}',
        json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 14000, "type": "offer"}).encode()]  # > 64 KB: 413
WASM = "wasm/litert_wasm_internal.wasm"  # the largest file the server serves (9 MB)


class LocalRoutesAttack:
    """The on-device routes' share of the attack (see the module's docstring)."""

    def _local(self) -> tuple:
        r = random.random()
        json_ct = {"Content-Type": "application/json"}
        pub = random.choice(self.streams) if self.streams else {"id": os.urandom(6).hex(), "secret": "x"}
        wrong = os.urandom(18).hex()
        if r < 0.30:
            return "local register", self._raw("POST", "/local", b"{}", extra=json_ct)
        if r < 0.38:
            return "local register text/plain", self._raw("POST", "/local", b"{}", extra={"Content-Type": "text/plain"})
        if r < 0.46:
            return "local register foreign Origin", self._raw("POST", "/local", b"{}",
                                                              extra={**json_ct, "Origin": "http://evil.example"})
        if r < 0.60:
            body = json.dumps({"secret": wrong, "viewer": os.urandom(6).hex(), "type": "answer", "sdp": "v=0\r\n"})
            return "local answer wrong secret", self._raw("POST", f"/local/{pub['id']}/answer", body.encode(),
                                                          extra=json_ct)
        if r < 0.70:
            return "local answer junk", self._raw("POST", f"/local/{pub['id']}/answer", random.choice(JUNK),
                                                  extra=json_ct)
        if r < 0.78:
            body = random.choice([json.dumps({"secret": wrong, "stats": {"fps": 30}}).encode(), *JUNK[:8]])
            return "local stats wrong secret or junk", self._raw("POST", f"/local/{pub['id']}/stats", body,
                                                                 extra=json_ct)
        if r < 0.84:
            return "local poll wrong secret", self._raw("GET", f"/local/{pub['id']}/next",
                                                        extra={"X-Backdrop-Secret": wrong})
        if r < 0.92:
            path = random.choice(["/model/selfie", "/runtime/litert/dist/index.js", f"/runtime/litert/{WASM}"])
            return "runtime/model file (64 KB read)", self._raw("GET", path), {"keep": 65536}
        path = random.choice(["/runtime/litert/../../etc/passwd", "/runtime/litert/%2e%2e/x", "/runtime/nope/a.js",
                              "/model/rvm", "/model/..%2fselfie", "/runtime/pdfjs/LICENSE.txt"])
        return "runtime/model unknown name", self._raw("GET", path)

    def _fire_local(self) -> None:
        kind, raw, *kw = self._local()
        self._fire(kind, raw, **(kw[0] if kw else {}))

    async def _poll_one(self) -> None:
        """One long poll after another on a stream our registrations got (the server caps them)."""
        while time.monotonic() < self.end:
            if not self.streams:
                await asyncio.sleep(0.2)
                continue
            pub = random.choice(self.streams)
            raw = self._raw("GET", f"/local/{pub['id']}/next", extra={"X-Backdrop-Secret": pub["secret"]})
            self.polls_open += 1
            self.polls_open_max = max(self.polls_open_max, self.polls_open)
            try:
                code, _ = await self._send("local long poll", raw, wait=max(0.1, min(25.0, self.end - time.monotonic())))
            finally:
                self.polls_open -= 1
            if code == "404":
                with contextlib.suppress(ValueError):
                    self.streams.remove(pub)  # replaced or expired
            await asyncio.sleep(self.reconnect)

    async def _slow_reader(self) -> None:
        counts = self.status.setdefault("slow reader (runtime .wasm, never read)", Counter())
        raw = self._raw("GET", f"/runtime/litert/{WASM}")
        loop = asyncio.get_running_loop()
        while time.monotonic() < self.end:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (self.host, self.port)), 5)
                await loop.sock_sendall(sock, raw)
                opened = time.monotonic()
                while time.monotonic() < self.end:  # never read: only notice when the server closes it
                    await asyncio.sleep(0.5)
                    try:
                        closed = not sock.recv(1, socket.MSG_PEEK)  # b"": FIN with nothing unread
                    except BlockingIOError:
                        closed = False
                    except OSError:  # reset: the server aborted it
                        closed = True
                    if closed:
                        counts["closed by server"] += 1
                        self.reader_lifetimes.append(time.monotonic() - opened)
                        break
                else:
                    counts["still open at the end"] += 1
            except (OSError, asyncio.TimeoutError):
                counts["reset or refused"] += 1
            finally:
                sock.close()
            await asyncio.sleep(self.reconnect)

    async def _view_one(self, i: int) -> None:
        """Viewer offers, one after another, to streams our registrations got, from loopback address
        ``i`` of ``--addresses``: our polls take them and never answer, so each waits."""
        source = f"127.0.0.{2 + i % max(1, self.addresses)}" if self.addresses else None
        json_ct = {"Content-Type": "application/json"}
        while time.monotonic() < self.end:
            if not self.streams or not self.view_sdp:
                await asyncio.sleep(0.2)
                continue
            pub = random.choice(self.streams)
            body = json.dumps({"sdp": self.view_sdp, "type": "offer", "token": pub["token"]}).encode()
            self.views_open += 1
            self.views_open_max = max(self.views_open_max, self.views_open)
            try:
                await self._send("held viewer offer (page never answers)", self._raw("POST", "/view", body, extra=json_ct),
                                 wait=max(0.1, min(25.0, self.end - time.monotonic())), source=source)
            finally:
                self.views_open -= 1
            await asyncio.sleep(self.reconnect)
