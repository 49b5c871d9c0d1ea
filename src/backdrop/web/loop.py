"""The server's event loop: uvloop where it is installed (the ``[web]`` extra, Linux and macOS),
else asyncio's own.

Why: one event loop carries everything the server does between frames: the real peer's RTP,
DTLS and SRTP, the hand-offs to the frame worker and the encoder, and every request an attacker
sends. Under the serve soak's attack mix (``benchmarks/serve_soak.py``: offer spam, slow sockets,
held viewer offers; 2 cores shared with the attacker and the client) the real peer kept 0.84 and
0.85 of its frame rate on asyncio's pure-Python selector loop and 0.93 and 0.91 on uvloop (libuv;
two runs each, in turns, 2026-12-07; docs/reliability.md).

``BACKDROP_EVENT_LOOP=asyncio`` keeps asyncio's loop (to compare, or where a library misbehaves
on uvloop); ``uvloop`` insists on it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os

from ..errors import install_hint
from .config import ServeError

CHOICES = ("uvloop", "asyncio")


def chosen_loop() -> str:
    """``uvloop`` or ``asyncio``: what ``BACKDROP_EVENT_LOOP`` asks for (default: uvloop where it
    is installed); a wrong value, or uvloop asked for and missing, is a :class:`ServeError`. The
    serve command calls it before it builds anything, so the mistake costs one line at once."""
    choice = os.environ.get("BACKDROP_EVENT_LOOP", "").strip().lower()
    if choice not in ("", *CHOICES):
        raise ServeError(f"BACKDROP_EVENT_LOOP must be uvloop or asyncio, got {choice!r}")
    if choice == "asyncio":
        return choice
    if importlib.util.find_spec("uvloop") is None:
        if choice == "uvloop":
            raise ServeError(f"BACKDROP_EVENT_LOOP=uvloop, but uvloop is not installed: {install_hint('web')}")
        return "asyncio"
    return "uvloop"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if chosen_loop() == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``uvloop`` or ``asyncio``: what ``/stats`` reports, so a measurement says which it ran on."""
    return "uvloop" if type(loop).__module__.split(".")[0] == "uvloop" else "asyncio"
