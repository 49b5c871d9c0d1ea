"""The server's settings and limits, in one place with no heavy imports.

:class:`ServerConfig` is what ``backdrop serve`` maps its flags onto; the constants are the caps
that keep a hostile client from choosing our memory or CPU bill. Every other module of the
server reads them from here, so a limit is stated once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackdropError, OptionError

STATIC_DIR = Path(__file__).with_name("static")
MAX_OFFER_BYTES = 64 * 1024        # an SDP offer is a few KB
MAX_TEXT_MESSAGE = 16 * 1024       # data-channel JSON messages (settings are tiny)
MAX_UPLOADS_PER_PEER = 4
INBOX_SIZE = 256                   # data-channel messages waiting per peer (upload chunks included)
UPLOAD_STALL_SECONDS = 30.0
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "application/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".ico": "image/x-icon"}


def content_policy(html: bytes | None = None) -> str:
    """The Content-Security-Policy: our own origin only. 'wasm-unsafe-eval' lets the on-device
    runtime compile its WebAssembly (nothing is eval'd); an inline import map in ``html`` is
    allowed by its sha256, never by 'unsafe-inline'; no site may frame a page (clickjacking:
    a camera page under another site's buttons)."""
    import base64
    import hashlib
    import re

    hashes = ""
    for body in re.findall(rb'<script type="importmap">(.*?)</script>', html or b"", re.S):
        hashes += f" 'sha256-{base64.b64encode(hashlib.sha256(body).digest()).decode()}'"
    return ("default-src 'self'; connect-src 'self'; "
            f"script-src 'self' 'wasm-unsafe-eval'{hashes}; worker-src 'self' blob:; "
            "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; frame-ancestors 'none'")


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "X-Frame-Options": "DENY"}  # frame-ancestors for browsers without CSP level 2


def secure(resp):
    """``resp`` with the security headers every answer carries (an error page too: a 404 that a
    browser sniffed as HTML, or framed by another site, is as good as any page for an attacker).
    A page's own CSP (its import map's hash) is kept."""
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    resp.headers.setdefault("Content-Security-Policy", content_policy())
    return resp


UPLOAD_TYPES = {  # declared MIME type -> kind; the content is sniffed and decoded regardless
    "image/jpeg": "image", "image/png": "image", "image/webp": "image",
    "video/mp4": "video", "video/webm": "video",
}


class ServeError(BackdropError):
    """The server cannot start (port in use, bad certificate, missing extra)."""


@dataclass
class ServerConfig:
    """Every knob of the server; ``backdrop serve`` maps its flags 1:1 onto these."""

    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 4
    max_viewers: int = 16
    max_upload_bytes: int = 8 * 1024 * 1024
    background: str = "blur"
    model: str | None = None
    threads: int | None = None
    connect_timeout: float = 20.0     # offer answered -> connected
    idle_timeout: float = 10.0        # connected, but no video frame and no RTP packet for this long -> dropped
    loopback_ice: bool | None = None  # None: only when ``host`` is a loopback address
    certfile: str | None = None
    keyfile: str | None = None
    marker_rows: int = 0              # measurement aid: copy the input's top rows to the output
    max_frame_pixels: int = 3840 * 2160  # larger incoming frames are scaled down before processing
    options: Any = None               # PipelineOptions for every peer (None: the defaults)
    allow_hosts: tuple = ()           # extra names accepted in the Host header (--allow-host)
    offer_rate: float = 3.0           # offers per second per client address (token bucket) ...
    offer_burst: int = 6              # ... and at once
    max_connections: int = 256        # open HTTP connections; idle/slow ones are evicted first
    header_timeout: float = 5.0       # request headers (and keep-alive idle) must come within this
    body_timeout: float = 10.0        # an offer's body must arrive within this
    upload_max_side: int = 1920       # uploaded pictures/videos larger than this are scaled down
    process_on: str = "device"        # the page's default: "device" (in the browser) or "server"
    upscale: int = 0                  # server mode: x2 super-resolution of each composite (0: off)
    frame_worker: str = "process"     # server mode: each publisher's pipeline in a "process" or a "thread"

    def validate(self) -> "ServerConfig":
        if self.upscale:
            from ..superres.frames import check_scale

            check_scale(self.upscale)
            if self.marker_rows:
                raise OptionError("marker_rows (a measurement aid) and upscale do not go together")
        if not 1 <= self.max_peers <= 256:
            raise OptionError(f"{{option}} must be between 1 and 256, got {self.max_peers}", option="max_peers")
        if not 0 <= self.max_viewers <= 1024:
            raise OptionError(f"{{option}} must be between 0 and 1024, got {self.max_viewers}", option="max_viewers")
        if not 1024 <= self.max_upload_bytes <= 512 * 1024 * 1024:
            raise OptionError("max_upload_bytes must be between 1 KiB and 512 MiB")
        if not 0 <= self.port <= 65535:
            raise OptionError(f"{{option}} must be between 0 and 65535, got {self.port}", option="port")
        if bool(self.certfile) != bool(self.keyfile):
            raise OptionError("certfile and keyfile go together")
        if not (self.offer_rate > 0 and self.offer_burst >= 1):
            raise OptionError("offer_rate must be > 0 and offer_burst >= 1")
        if not 8 <= self.max_connections <= 100000:
            raise OptionError("max_connections must be between 8 and 100000")
        if self.process_on not in ("device", "server"):
            raise OptionError(f"{{option}} must be device or server, got {str(self.process_on)[:20]!r}",
                              option="process_on")
        if self.frame_worker not in ("process", "thread"):
            raise OptionError(f"{{option}} must be process or thread, got {str(self.frame_worker)[:20]!r}",
                              option="frame_worker")
        self.allow_hosts = tuple(self.allow_hosts or ())
        from .guard import split_host  # here: guard imports the modules that import this one

        bad = [h for h in self.allow_hosts if not isinstance(h, str) or not split_host(h)]
        if bad:
            raise OptionError(f"--allow-host {str(bad[0])[:40]!r} is not a host name, IPv4 or [IPv6] address")
        if self.background.strip().lower() == "transparent":
            raise OptionError("a live stream has no alpha channel: use a colour, blur or an image")
        return self

    @property
    def loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"
