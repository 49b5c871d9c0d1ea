"""The attack mix of ``benchmarks/serve_soak.py``: hostile HTTP traffic against ``backdrop serve``.

    python benchmarks/serve_attack.py http://127.0.0.1:8080/ --seconds 20      # prints a JSON summary

One process, one asyncio loop, raw sockets (no HTTP client library), so the attacker itself stays
light on a machine whose cores it shares with the server and the real peer. For ``--seconds`` it runs:

* **offer spam** (``--offers``/s): POST /offer with a real aiortc SDP, junk (not JSON, deep nesting,
  bad SDP, over 64 KB), ``text/plain``, foreign ``Host``/``Origin``; POST /view with guessed tokens;
* **foreign-Host GETs** (``--gets`` per second) of /stats, /peers, /view, /config;
* **slow sockets** (``--slow`` at once, reopened ``--reconnect`` s after the server closed one): request headers
  sent a byte at a time and never finished (most), half a request line then silence, and
  offers whose headers are complete but whose body trickles (a request in progress);
* **on-device routes, long polls, slow readers and held viewer offers**: ``serve_attack_local.py``.

Every answer's status is counted by kind; the summary (stdout, one JSON object after ``ready``)
also has the slow sockets' lifetimes and the attacker's own CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import socket
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

from serve_attack_local import JUNK, WASM, LocalRoutesAttack  # noqa: E402  (the on-device part of the mix)


def real_sdp() -> str:
    """A genuine offer (video sendrecv + a data channel), as a browser would send it."""
    from aiortc import RTCPeerConnection

    async def make():
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="sendrecv")
        pc.createDataChannel("controls")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


class Attack(LocalRoutesAttack):
    def __init__(self, url: str, seconds: float, offers: float, gets: float, slow: int, reconnect: float = 1.0,
                 max_inflight: int = 128, local: float = 0.0, polls: int = 0, readers: int = 0, views: int = 0,
                 addresses: int = 0):
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 80
        self.own = f"{self.host}:{self.port}"
        self.seconds, self.offers, self.gets, self.slow = seconds, offers, gets, slow
        self.local, self.polls, self.readers = local, polls, readers
        self.streams: list[dict] = []  # on-device streams our registrations got: {id, secret, token}
        self.views, self.addresses, self.views_open, self.views_open_max, self.view_sdp = views, addresses, 0, 0, ""
        self.polls_open = 0
        self.polls_open_max = 0
        self.reconnect, self.max_inflight = reconnect, max_inflight
        self.inflight = 0
        self.status: dict[str, Counter] = {}
        self.skipped = 0  # requests not sent because max_inflight were still waiting
        self.slow_opened = 0
        self.slow_closed_by_server = 0
        self.slow_lifetimes: list[float] = []
        self.reader_lifetimes: list[float] = []
        self.slow_open_now = 0
        self.slow_open_max = 0
        self.sdp = ""
        self.end = 0.0

    # -- one request ----------------------------------------------------------------------------------
    def _raw(self, method: str, path: str, body: bytes | None = None, host: str | None = None,
             extra: dict[str, str] | None = None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host if host is not None else self.own}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    async def _send(self, kind: str, raw: bytes, wait: float = 10, keep: int | None = None,
                    source: str | None = None) -> tuple[str, bytes]:
        """Send one request (from the loopback address ``source``, if given); count and return
        (status, body). ``keep``: read that many bytes, then hang up."""
        counts = self.status.setdefault(kind, Counter())
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                self.host, self.port, local_addr=(source, 0) if source else None), 5)
        except (OSError, asyncio.TimeoutError):
            counts["connect failed"] += 1
            return "connect failed", b""
        code, body = "closed", b""
        try:
            writer.write(raw)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), wait)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", line)
            code = m.group(1).decode() if m else "closed"
            counts[code] += 1
            if keep is not None:
                await asyncio.wait_for(reader.read(keep), 5)
            else:  # the rest; Connection: close ends it
                body = (await asyncio.wait_for(reader.read(), 5)).partition(b"\r\n\r\n")[2]
        except asyncio.TimeoutError:
            counts["timeout"] += 1
            code = "timeout"
        except OSError:
            counts["reset"] += 1
            code = "reset"
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        return code, body

    def _fire(self, kind: str, raw: bytes, **kw) -> None:
        if self.inflight >= self.max_inflight:
            self.skipped += 1
            return
        self.inflight += 1

        async def run():
            try:
                code, body = await self._send(kind, raw, **kw)
                if kind == "local register" and code == "200":
                    self._remember(body)
            finally:
                self.inflight -= 1
        asyncio.ensure_future(run())

    def _remember(self, body: bytes) -> None:
        try:
            got = json.loads(body)
            self.streams.append({"id": got["id"], "secret": got["secret"], "token": got["token"]})
        except (ValueError, KeyError, TypeError):
            return
        del self.streams[:-32]

    def _offer(self) -> tuple[str, bytes]:
        r = random.random()
        ufrag = "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=8))
        sdp = re.sub(r"a=ice-ufrag:\S+", f"a=ice-ufrag:{ufrag}", self.sdp)
        good = json.dumps({"sdp": sdp, "type": "offer"}).encode()
        json_ct = {"Content-Type": "application/json"}
        if r < 0.25:
            return "offer valid", self._raw("POST", "/offer", good, extra=json_ct)
        if r < 0.50:
            return "offer junk", self._raw("POST", "/offer", random.choice(JUNK), extra=json_ct)
        if r < 0.62:
            return "offer text/plain", self._raw("POST", "/offer", good, extra={"Content-Type": "text/plain"})
        if r < 0.76:
            host = random.choice(["evil.example", "attacker.test:8080", f"127.0.0.1.evil.example:{self.port}",
                                  "10.1.2.3", ""])
            return "offer foreign Host", self._raw("POST", "/offer", good, host=host, extra=json_ct)
        if r < 0.90:
            origin = random.choice(["http://evil.example", "null", f"http://localhost:{self.port + 1}"])
            return "offer foreign Origin", self._raw("POST", "/offer", good, extra={**json_ct, "Origin": origin})
        body = json.dumps({"sdp": sdp, "type": "offer", "token": os.urandom(12).hex()}).encode()
        return "view guessed token", self._raw("POST", "/view", body, extra=json_ct)

    def _get(self) -> tuple[str, bytes]:
        path = random.choice(["/stats", "/peers", "/view", "/config", "/stats?token=x", "/"])
        host = random.choice(["evil.example", "rebind.attacker.test:8080", "", "192.168.1.1"])
        return "GET foreign Host", self._raw("GET", path, host=host)

    async def _rate(self, per_second: float, make) -> None:
        if per_second <= 0:
            return
        step = 1.0 / per_second
        t = time.monotonic()
        while time.monotonic() < self.end:
            self._fire(*make())
            t += step
            await asyncio.sleep(max(0.0, t - time.monotonic()))

    async def _rate_call(self, per_second: float, fire) -> None:
        step = 1.0 / per_second
        t = time.monotonic()
        while time.monotonic() < self.end:
            fire()
            t += step
            await asyncio.sleep(max(0.0, t - time.monotonic()))

    # -- slow sockets -----------------------------------------------------------------------------------
    async def _slow_one(self, i: int) -> None:
        mode = "slow body" if i % 10 == 0 else "silent" if i % 10 == 1 else "trickle"
        counts = self.status.setdefault(f"slow socket ({mode})", Counter())
        while time.monotonic() < self.end:
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 5)
            except (OSError, asyncio.TimeoutError):
                counts["connect failed"] += 1
                await asyncio.sleep(0.5)
                continue
            self.slow_opened += 1
            self.slow_open_now += 1
            self.slow_open_max = max(self.slow_open_max, self.slow_open_now)
            opened = time.monotonic()
            if mode == "slow body":
                first = (f"POST /offer HTTP/1.1\r\nHost: {self.own}\r\nContent-Type: application/json\r\n"
                         "Content-Length: 4000\r\n\r\n").encode()
                drip = b"{" + b" " * 3999
            elif mode == "silent":
                first, drip = b"GET /sta", b""
            else:
                first, drip = f"GET / HTTP/1.1\r\nHost: {self.own}\r\n".encode(), b"X-Slow-Header: " + b"a" * 4000
            closed_by_server = False
            try:
                writer.write(first)
                k = 0
                while time.monotonic() < self.end:  # one byte a second, until the server closes it
                    try:
                        data = await asyncio.wait_for(reader.read(256), 1.0)
                    except asyncio.TimeoutError:
                        if k < len(drip):
                            writer.write(drip[k:k + 1])
                            k += 1
                        continue
                    if not data or data.startswith(b"HTTP/"):
                        status = re.match(rb"HTTP/1\.[01] (\d{3})", data or b"")
                        counts[status.group(1).decode() if status else "closed by server"] += 1
                        closed_by_server = True
                        break
            except OSError:
                counts["reset by server"] += 1
                closed_by_server = True
            finally:
                self.slow_open_now -= 1
                writer.close()
            if closed_by_server:
                self.slow_closed_by_server += 1
                self.slow_lifetimes.append(time.monotonic() - opened)
            await asyncio.sleep(self.reconnect)

    # -- the whole attack ---------------------------------------------------------------------------------
    async def run(self) -> dict:
        self.end = time.monotonic() + self.seconds
        cpu0, t0 = os.times(), time.monotonic()
        tasks = [asyncio.ensure_future(self._slow_one(i)) for i in range(self.slow)]
        tasks += [asyncio.ensure_future(self._rate(self.offers, self._offer)),
                  asyncio.ensure_future(self._rate(self.gets, self._get))]
        tasks += [asyncio.ensure_future(self._poll_one()) for _ in range(self.polls)]
        tasks += [asyncio.ensure_future(self._slow_reader()) for _ in range(self.readers)]
        tasks += [asyncio.ensure_future(self._view_one(i)) for i in range(self.views)]
        if self.local > 0:
            tasks.append(asyncio.ensure_future(self._rate_call(self.local, self._fire_local)))
        await asyncio.gather(*tasks, return_exceptions=True)
        for _ in range(100):  # let the last requests finish (at most 10 s)
            if not self.inflight:
                break
            await asyncio.sleep(0.1)
        wall = time.monotonic() - t0
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        life = sorted(self.slow_lifetimes)
        return {
            "seconds": round(wall, 1), "offers_per_s": self.offers, "gets_per_s": self.gets,
            "slow_sockets": self.slow, "reconnect_s": self.reconnect,
            "local_per_s": self.local, "long_polls": self.polls, "slow_readers": self.readers,
            "long_polls_open_max": self.polls_open_max, "local_streams_got": len(self.streams),
            "held_views": self.views, "view_addresses": self.addresses, "held_views_open_max": self.views_open_max,
            "requests": {k: dict(sorted(v.items())) for k, v in sorted(self.status.items())},
            "requests_total": sum(sum(v.values()) for k, v in self.status.items() if not k.startswith("slow")),
            "skipped_inflight_full": self.skipped,
            "slow_opened": self.slow_opened, "slow_open_max": self.slow_open_max,
            "slow_closed_by_server": self.slow_closed_by_server,
            "slow_lifetime_s_p50": round(life[len(life) // 2], 2) if life else None,
            "slow_lifetime_s_max": round(life[-1], 2) if life else None,
            "reader_lifetime_s_p50": round(sorted(self.reader_lifetimes)[len(self.reader_lifetimes) // 2], 2)
            if self.reader_lifetimes else None,
            "attacker_cpu_pct": round(100 * cpu / wall, 1),
        }


def add_mix_args(ap: argparse.ArgumentParser) -> None:  # here, and passed through by serve_soak.py
    ap.add_argument("--offers", type=float, default=60.0, help="offer-spam requests per second")
    ap.add_argument("--gets", type=float, default=20.0, help="foreign-Host GETs per second")
    ap.add_argument("--slow", type=int, default=300, help="slow sockets kept open at once")
    ap.add_argument("--reconnect", type=float, default=1.0, help="seconds before a closed slow socket is reopened (0.05: churn)")
    ap.add_argument("--local", type=float, default=20.0, help="on-device route requests per second")
    ap.add_argument("--polls", type=int, default=200, help="long polls held open at once")
    ap.add_argument("--readers", type=int, default=20, help="slow readers of the runtime .wasm at once")
    ap.add_argument("--views", type=int, default=60, help="viewer offers held at once (their page never answers)")
    ap.add_argument("--addresses", type=int, default=6,
                    help="loopback addresses (127.0.0.2...) the viewer offers come from, each with its own offer bucket")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=20.0)
    add_mix_args(ap)
    args = ap.parse_args(argv)
    attack = Attack(args.url, args.seconds, args.offers, args.gets, args.slow, args.reconnect,
                    local=args.local, polls=args.polls, readers=args.readers, views=args.views,
                    addresses=args.addresses)
    attack.sdp = attack.view_sdp = real_sdp()  # (sendrecv video: a viewer's offer may receive it)
    print("ready", flush=True)
    result = asyncio.run(attack.run())
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
