"""``backdrop serve``: the browser's camera in over WebRTC, the composite back out, live.

The page (``static/index.html``) asks for the camera, POSTs its offer as JSON ``{sdp, type}`` to
``/offer`` and gets the answer back; the server runs a low-latency Pipeline on every frame and
returns the processed track on the same connection. Controls travel over a data channel (JSON
text messages; background uploads as binary chunks after an ``upload`` header) and take effect
on the next frame. ``/viewer`` receives a publisher's composited stream (a class, a broadcast).

Why it is built this way:

- **Each peer owns its state**: one :class:`~backdrop.live.LiveProcessor` (Pipeline, background,
  model) and one worker thread per peer, so peers never share per-stream state and a model is
  only ever called from one thread.
- **No latency build-up**: aiortc queues every decoded frame; a reader task drains that queue
  and keeps only the newest frame, so a slow peer drops frames instead of falling behind.
- **Hostile input is expected**: malformed offers get a 400 (never a 500), sizes are capped
  before anything is allocated, uploads are sniffed, decoded and kept in a per-peer temp dir
  under a server-chosen name (the client's file name is never used as a path), and the number
  of peers is capped with a clear refusal.
- **Nothing leaks**: a peer that leaves, fails, never connects or silently stops sending is
  closed by a watchdog, which also ends its thread, tasks, tracks and temp files.
- **Local by default**: HTTP binds 127.0.0.1, and then ICE is restricted to the loopback address
  as well, so nothing is exposed on the network unless ``--host`` says so. Requests must name
  that host (no DNS rebinding) and come from our own origin; viewers need the publisher's token.

Where it lives (this module re-exports the public names, so ``backdrop.web.server`` stays the
one import): :mod:`.app` the aiohttp app and its offer handlers, :mod:`.peers` the peers,
:mod:`.track` the processed track, :mod:`.uploads` background uploads, :mod:`.protocol` the
offer checks and JSON replies, :mod:`.config` settings and limits, :mod:`.ice` loopback ICE,
:mod:`.memory` RSS and ``malloc_trim``, :mod:`.runner` ``serve`` and :class:`ServerThread`,
:mod:`.guard` Host/Origin checks, offer rate limits, socket bounds and stale upload dirs,
:mod:`.shrink` scaling oversized uploads down. The security model is in ``docs/live.md``.
"""

from __future__ import annotations

from .app import BackdropServer
from .config import (CONTENT_TYPES, INBOX_SIZE, MAX_OFFER_BYTES, MAX_TEXT_MESSAGE, MAX_UPLOADS_PER_PEER,
                     STATIC_DIR, UPLOAD_STALL_SECONDS, UPLOAD_TYPES, ServeError, ServerConfig)
from .ice import loopback_ice
from .memory import process_memory, release_free_memory
from .peers import Peer, ViewerPeer
from .publisher import PublisherPeer
from .protocol import ClientError, check_offer_body
from .runner import ServerThread, serve, start_site
from .track import PeerStats, make_processed_track
from .uploads import safe_display_name, sniff_upload

__all__ = [
    "BackdropServer", "ServerConfig", "ServeError", "ServerThread", "serve", "start_site", "loopback_ice",
    "ClientError", "check_offer_body", "safe_display_name", "sniff_upload", "process_memory",
    "release_free_memory", "Peer", "PublisherPeer", "ViewerPeer", "PeerStats", "make_processed_track",
    "STATIC_DIR", "MAX_OFFER_BYTES", "MAX_TEXT_MESSAGE", "MAX_UPLOADS_PER_PEER", "INBOX_SIZE",
    "UPLOAD_STALL_SECONDS", "CONTENT_TYPES", "UPLOAD_TYPES",
]
