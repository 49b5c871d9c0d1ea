"""The server's event loop (web/loop.py): uvloop where the [web] extra installed it, asyncio's own
on request, and a real WebRTC round trip on each (the server's loop carries the peer's RTP, DTLS
and the frame worker's hand-offs); a wrong ``BACKDROP_EVENT_LOOP`` is one line and exit 2."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")

from backdrop.web.client import Client  # noqa: E402
from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402
from test_web import arun, check_composite, frames, regions  # noqa: E402,F401  (fixtures: real clip pixels)

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


@pytest.mark.parametrize("choice", ["", "asyncio"])
def test_a_real_peer_round_trip_on_each_loop(choice, frames, regions, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setenv("BACKDROP_EVENT_LOOP", choice)
    with ServerThread(ServerConfig(port=0, background="#00ff00", marker_rows=16, process_on="server")) as srv:
        want = "uvloop" if HAS_UVLOOP and choice != "asyncio" else "asyncio"
        assert srv.stats()["event_loop"] == want

        async def main():
            pub = Client(srv.url, frames, fps=30, marker=True, keep_frames=1)
            await pub.connect()
            await pub.wait_frames(12)
            bg, person = check_composite(pub.last_frames[-1], frames, regions, (0, 255, 0))
            assert bg < 25 and person < 20, (bg, person)
            await pub.close()
        arun(main)
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"], caplog.text[-2000:]


def test_a_wrong_event_loop_setting_is_one_line():
    env = {**os.environ, "BACKDROP_EVENT_LOOP": "tokio", "BACKDROP_NPM_REGISTRY": "http://127.0.0.1:9"}
    # checked before anything is built: the background (made before the server) is never looked at
    proc = subprocess.run([sys.executable, "-m", "backdrop", "serve", "--port", "0", "-b", "no-such-background"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "BACKDROP_EVENT_LOOP must be uvloop or asyncio" in proc.stderr
