"""``backdrop serve`` against hostile neighbours: DNS rebinding (Host), other sites (Origin,
Content-Type), stream tokens, offers validated before anything is built, per-address rate
limits, slow sockets, a background that turns to garbage, oversized uploads, stale temp dirs,
signals with a peer connected and garbage on the socket. Real HTTP on 127.0.0.1 throughout."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")
pytest.importorskip("aiohttp", reason="the [web] extra (aiortc, aiohttp) is not installed")

from backdrop.web.client import Client  # noqa: E402
from test_web import wait_for as wait_until  # noqa: E402  (one polling loop for the web tests)
from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402

FRAMES = [np.full((240, 320, 3), 90, np.uint8)]


@pytest.fixture(scope="module")
def server():
    # (built field by field so that the same tests can be run against a server without the option)
    extra = {"allow_hosts": ("backdrop.lan",)} if "allow_hosts" in ServerConfig.__dataclass_fields__ else {}
    cfg = ServerConfig(port=0, background="#00ff00", idle_timeout=10.0, connect_timeout=5.0, max_peers=3,
                       max_upload_bytes=4 * 1024 * 1024, **extra)
    with ServerThread(cfg) as srv:
        yield srv


def port_of(srv) -> int:
    return int(srv.url.rstrip("/").rsplit(":", 1)[1])


def request(srv, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port_of(srv), timeout=20)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{port_of(srv)}", **(headers or {})}
        for k, v in hdrs.items():
            if v is not None:
                conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def arun(coro_fn, timeout=60):
    async def main():
        return await asyncio.wait_for(coro_fn(), timeout)
    return asyncio.run(main())


async def offer_sdp(direction="sendrecv") -> tuple[object, str]:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


# -- 1. Host and Origin ----------------------------------------------------------------------------------
def test_host_header_must_name_the_bound_host(server):
    p = port_of(server)
    for host in (f"127.0.0.1:{p}", f"localhost:{p}", f"[::1]:{p}", "localhost", f"backdrop.lan:{p}"):
        assert request(server, "GET", "/", headers={"Host": host})[0] == 200, host
    for host in (f"evil.example:{p}", "attacker.test", f"127.0.0.1.evil.example:{p}", "", f"10.1.2.3:{p}"):
        code, body = request(server, "GET", "/config", headers={"Host": host})
        assert code == 403 and b"Host" in body, (host, code)
    assert server.stats()["guarded"].get("host", 0) >= 5


def test_cross_origin_requests_are_refused(server):
    p = port_of(server)
    evil = {"Origin": "http://evil.example", "Content-Type": "application/json"}
    assert request(server, "POST", "/offer", b"{}", evil)[0] == 403
    assert request(server, "GET", "/stats", headers={"Origin": "null"})[0] == 403
    assert request(server, "GET", "/peers", headers={"Origin": f"http://localhost:{p + 1}"})[0] == 403
    same = {"Origin": f"http://127.0.0.1:{p}", "Content-Type": "application/json"}
    assert request(server, "POST", "/offer", b"{}", same)[0] == 400  # our own page: reaches the checks
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        code, body = request(server, "POST", "/offer", b'{"sdp": "v=0", "type": "offer"}', {"Content-Type": ctype})
        assert code == 415 and "application/json" in json.loads(body)["error"], (ctype, code)


# -- 2. tokens ------------------------------------------------------------------------------------------------
def test_viewing_needs_the_publishers_token(server):
    async def main():
        pub = Client(server.url, FRAMES, fps=15)
        answer = await pub.connect()
        hello = next(m for m in pub.messages if m["type"] == "hello")
        assert pub.token and len(pub.token) >= 20 and hello["token"] == pub.token
        assert answer["viewer"] == f"/viewer?token={pub.token}"
        await pub.wait_frames(3)
        loop = asyncio.get_running_loop()
        for path in ("/peers", "/stats", "/peers?token=wrong", "/stats?token=x"):
            code, raw = await loop.run_in_executor(None, request, server, "GET", path)
            assert code == 200 and pub.peer.encode() not in raw and pub.token.encode() not in raw, (path, raw)
        code, raw = await loop.run_in_executor(None, request, server, "GET", f"/peers?token={pub.token}")
        assert [p["id"] for p in json.loads(raw)["publishers"]] == [pub.peer]
        assert pub.token.encode() not in raw
        pc, sdp = await offer_sdp("recvonly")
        for extra, want in (({}, 403), ({"token": "guess"}, 403), ({"peer": pub.peer}, 403),
                            ({"token": pub.token}, 200)):
            body = json.dumps({"sdp": sdp, "type": "offer", **extra}).encode()
            code, raw = await loop.run_in_executor(None, request, server, "POST", "/view", body,
                                                   {"Content-Type": "application/json"})
            assert code == want, (extra, code, raw[:200])
        assert json.loads(raw)["source"] == pub.peer
        await pc.close()
        await pub.close()
    arun(main)


# -- 3. validate first, build late; rate limits ---------------------------------------------------------------
def test_offers_are_validated_before_anything_is_built(monkeypatch):
    from backdrop.web import publisher

    built = []
    original = publisher.PublisherPeer.make_processor
    monkeypatch.setattr(publisher.PublisherPeer, "make_processor", lambda self: (built.append(1), original(self)))
    with ServerThread(ServerConfig(port=0, background="#00ff00", max_peers=1, offer_rate=0.1,
                                   offer_burst=3)) as srv:
        async def main():
            loop = asyncio.get_running_loop()
            pc, sdp = await offer_sdp("recvonly")  # valid SDP, but it sends no video
            body = json.dumps({"sdp": sdp, "type": "offer"}).encode()
            code, raw = await loop.run_in_executor(None, request, srv, "POST", "/offer", body,
                                                   {"Content-Type": "application/json"})
            assert code == 400 and "no video track" in json.loads(raw)["error"]
            await pc.close()
            assert built == []  # refused before the pipeline (the expensive part) was built
            # a burst of good offers from one address: 3 charged at once, then 429 in one line
            pcs = [(await offer_sdp("sendrecv")) for _ in range(8)]
            codes = []
            for _, sdp in pcs:
                body = json.dumps({"sdp": sdp, "type": "offer"}).encode()
                code, raw = await loop.run_in_executor(None, request, srv, "POST", "/offer", body,
                                                       {"Content-Type": "application/json"})
                codes.append(code)
                if code == 429:
                    msg = json.loads(raw)["error"]
                    assert "too many offers" in msg and "\n" not in msg
            for pc, _ in pcs:
                await pc.close()
            # one peer answered (max_peers=1), two refused as full, the rest rate-limited (0.1/s refill)
            assert codes[:3] == [200, 503, 503] and codes[3:].count(429) >= 4 and set(codes[3:]) <= {429, 503}, codes
            # answered, but it never connects (its page never takes the answer): nothing is built
            # for it, not even after a while (the process and model come once ICE and DTLS are through)
            await asyncio.sleep(1.0)
            assert built == [] and srv.server.publishers, built
            return codes.count(429)
        limited = arun(main)
        assert srv.stats()["guarded"]["rate"] == limited


def test_a_peer_that_connects_gets_its_pipeline_once_and_a_failed_build_ends_only_it(monkeypatch):
    """The pipeline is built when ICE and DTLS are through: once for a real caller, whose hello and
    composites follow; a build that fails (no memory for the process, say) is one line to the page
    and the log, that peer ends, and the next caller is served."""
    from backdrop.errors import BackdropError
    from backdrop.web import publisher

    built, fail = [], [True]
    original = publisher.PublisherPeer.make_processor

    def make(self):
        built.append(1)
        if fail[0]:
            raise BackdropError("cannot start a process: out of memory")
        return original(self)

    monkeypatch.setattr(publisher.PublisherPeer, "make_processor", make)
    with ServerThread(ServerConfig(port=0, background="#00ff00", connect_timeout=5.0)) as srv:
        async def main():
            c = Client(srv.url, FRAMES, fps=15)
            with pytest.raises(TimeoutError):  # no pipeline, no hello
                await c.connect(timeout=5.0)
            assert await asyncio.get_running_loop().run_in_executor(
                None, wait_until, lambda: not srv.server.publishers, 10)
            errors = [m["message"] for m in c.messages if m.get("type") == "error"]
            assert errors == ["processing could not start on the server: cannot start a process: out of memory"], c.messages
            assert len(built) == 1  # tried once, not once a frame
            await c.close()
            fail[0] = False
            again = Client(srv.url, FRAMES, fps=15, keep_frames=1)
            await again.connect()
            hello = next(m for m in again.messages if m["type"] == "hello")
            assert hello["settings"]["background"] == "#00ff00"
            await again.wait_frames(3)
            assert np.abs(again.last_frames[-1][:40, :40].astype(int) - (0, 255, 0)).mean() < 40  # the new background
            assert len(built) == 2
            await again.close()
        arun(main)


def test_rate_limiter_refills():
    from backdrop.web.guard import RateLimiter

    rl = RateLimiter(rate=20.0, burst=2)
    assert [rl.allow("a"), rl.allow("a"), rl.allow("a")] == [True, True, False]
    assert rl.allow("b")  # per address
    time.sleep(0.12)
    assert rl.allow("a")


# -- 4. slow sockets --------------------------------------------------------------------------------------------
def test_slow_sockets_cannot_lock_out_a_real_client():
    n = 300
    with ServerThread(ServerConfig(port=0, max_connections=64, header_timeout=2.0)) as srv:
        p = port_of(srv)
        slow = []
        try:
            for _ in range(n):  # slowloris: headers begun, never finished
                s = socket.create_connection(("127.0.0.1", p), timeout=5)
                s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nX-Slow: ".encode())
                slow.append(s)
            t0 = time.monotonic()
            assert request(srv, "GET", "/config")[0] == 200
            got_in = time.monotonic() - t0
            assert got_in < 2.0, got_in
            print(f"\n{n} slow sockets open: a real client got its answer in {got_in * 1000:.0f} ms")
            open_now = srv.call(lambda: len(srv._runner.server._connections))
            assert open_now <= 64, open_now
            time.sleep(2.0 + 1.5)  # past the header timeout: every slow socket was closed by the server
            closed = 0
            for s in slow:
                s.settimeout(0.5)
                try:
                    closed += s.recv(1) == b""
                except (ConnectionResetError, BrokenPipeError):
                    closed += 1
                except socket.timeout:
                    pass
            assert closed == n, f"{closed} of {n} slow sockets closed"
            assert request(srv, "GET", "/")[0] == 200
        finally:
            for s in slow:
                s.close()


def _slow_offer(port: int) -> socket.socket:
    """An offer whose headers are complete and whose body never comes (one byte of 4000)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(f"POST /offer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
              "Content-Length: 4000\r\n\r\n{".encode())
    return s


def test_slow_offer_bodies_cannot_lock_out_a_real_client(caplog):
    """Offers whose body trickles in are requests in progress: they used to be safe from eviction,
    so as many of them as the cap refused every real client (connection reset) for body_timeout."""
    with ServerThread(ServerConfig(port=0, max_connections=32, header_timeout=2.0, body_timeout=60.0)) as srv:
        p = port_of(srv)
        slow = [_slow_offer(p) for _ in range(64)]
        try:
            with caplog.at_level("WARNING", logger="backdrop.web.http"):
                for _ in range(3):
                    assert request(srv, "GET", "/config")[0] == 200
                    slow.append(_slow_offer(p))  # the attacker keeps trying
                open_now = srv.call(lambda: sum(not h._force_close for h in srv._runner.server._connections))
                assert open_now <= 32, open_now
        finally:
            for s in slow:
                s.close()
    # an evicted slow body is no malformed request: no warning flood
    assert not [r for r in caplog.records if "Error handling request" in r.getMessage()]


def test_a_newcomer_refused_over_the_cap_leaves_no_traceback(monkeypatch, caplog):
    """Every connection busy with a complete request: the newcomer is refused, the busy ones are
    served. (Refused inside connection_made, aiohttp's handler task died with an AssertionError,
    logged as 'Task exception was never retrieved' with a traceback, once per refusal.)"""
    import gc
    import threading

    from backdrop.web import app

    gate: dict = {}

    async def held_config(self, request):
        gate.setdefault("open", asyncio.Event())
        gate["busy"] = gate.get("busy", 0) + 1
        await gate["open"].wait()
        return app.json_response({"held": True})

    monkeypatch.setattr(app.BackdropServer, "get_config", held_config)
    cap = 8
    with ServerThread(ServerConfig(port=0, max_connections=cap)) as srv:
        p = port_of(srv)
        codes = []
        busy = [threading.Thread(target=lambda: codes.append(request(srv, "GET", "/config")[0])) for _ in range(cap)]
        for t in busy:
            t.start()
        assert wait_for(lambda: srv.call(lambda: gate.get("busy", 0)) == cap, 20)
        with caplog.at_level("ERROR", logger="asyncio"):
            refused = 0
            for _ in range(5):
                with socket.create_connection(("127.0.0.1", p), timeout=10) as s:
                    s.sendall(f"GET /config HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n".encode())
                    try:
                        refused += s.recv(64) == b""
                    except ConnectionResetError:
                        refused += 1
            srv.call(lambda: gate["open"].set())
            for t in busy:
                t.join(20)
            srv.call(gc.collect)
        assert refused == 5 and codes == [200] * cap, (refused, codes)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()], caplog.text[-2000:]


def wait_for(pred, timeout, interval=0.05):
    return wait_until(pred, timeout, interval)


# -- 5. backgrounds: garbage mid-stream, oversized, stale files -----------------------------------------------------
def _video(w, h, n=20) -> bytes:
    import av

    path = Path(tempfile.mkdtemp()) / "v.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[..., 2] = 200
            img[:, : (i * 7) % w] = 60
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    data = path.read_bytes()
    path.unlink()
    path.parent.rmdir()
    return data


@pytest.fixture()
def thread_server():
    """The server with each pipeline on a thread of its own process, so a test's monkeypatch reaches
    it (in the default, a child process per publisher, it would not)."""
    cfg = ServerConfig(port=0, background="#00ff00", idle_timeout=10.0, connect_timeout=5.0, max_peers=3,
                       max_upload_bytes=4 * 1024 * 1024, frame_worker="thread")
    with ServerThread(cfg) as srv:
        yield srv


def test_a_background_video_that_turns_to_garbage_does_not_freeze_the_peer(thread_server, monkeypatch, caplog):
    """The decoder gives a few frames, then only errors (as a damaged upload does): the peer keeps
    streaming (last good frame, then the server's background), the page gets an error, one log line.
    (The same path serves a frame the worker process fails: tests/test_serve_frame_worker.py.)"""
    server = thread_server
    import av

    from backdrop.compose.backgrounds import video

    calls = []
    original = video.VideoBackground.render

    def render(self, index, frame, alpha, working=None):
        calls.append(index)
        if len(calls) > 4:
            raise av.InvalidDataError(1094995529, "Invalid data found when processing input")
        return original(self, index, frame, alpha, working)

    monkeypatch.setattr(video.VideoBackground, "render", render)

    async def main():
        c = Client(server.url, FRAMES, fps=15, keep_frames=1)
        await c.connect()
        await c.wait_frames(3)
        ok = await c.upload(_video(160, 120), "loop.mp4", "video/mp4")
        assert ok["type"] == "uploaded", ok
        n = c.received
        await c.wait_frames(n + 15, timeout=20)  # still streaming
        errors = [m for m in c.messages if m.get("type") == "error"]
        assert errors and "cannot be used any more" in errors[0]["message"], c.messages[-5:]
        assert str(server.server.upload_root) not in errors[0]["message"]
        await c.wait_frames(c.received + 5)
        img = c.last_frames[-1]
        assert np.median(img[..., 1]) > 150  # back on the server's green background
        await c.close()
    with caplog.at_level("WARNING", logger="backdrop.web.track"):
        arun(main)
    lines = [r for r in caplog.records if "processing failed" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0].getMessage() and not lines[0].exc_info


def test_oversized_uploads_are_scaled_down(server):
    import cv2

    big = np.zeros((4320, 7680, 3), np.uint8)  # 8K, but compresses to a small JPEG
    big[:, :, 0] = 255
    jpeg = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 50])[1].tobytes()

    async def main():
        c = Client(server.url, FRAMES, fps=15)
        await c.connect()
        ok = await c.upload(jpeg, "8k.jpg", "image/jpeg")
        assert ok["type"] == "uploaded" and ok["scaled"] == [1920, 1080], ok
        files = [p for p in server.server.upload_root.rglob("upload-*") if p.is_file()]
        assert len(files) == 1 and cv2.imread(str(files[0])).shape[:2] == (1080, 1920)
        ok = await c.upload(_video(3840, 2160, n=6), "4k.mp4", "video/mp4")
        assert ok["type"] == "uploaded" and ok["scaled"] == [1920, 1080], ok
        await c.wait_frames(c.received + 5)
        await c.close()
    arun(main, timeout=120)


def test_stale_upload_dirs_are_removed_on_start():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"backdrop-uploads-{dead.pid}-"))
    (stale / "peer-x").mkdir()
    (stale / "peer-x" / "upload-1.jpg").write_bytes(b"\xff\xd8\xff")
    alive = Path(tempfile.mkdtemp(prefix=f"backdrop-uploads-{os.getppid()}-"))  # a running server's
    try:
        with ServerThread(ServerConfig(port=0)) as srv:
            assert not stale.exists()
            assert alive.exists()
            assert srv.server.upload_root.name.startswith(f"backdrop-uploads-{os.getpid()}-")
    finally:
        import shutil

        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(alive, ignore_errors=True)


# -- 6 and 7. signals with a peer connected; garbage on the socket ----------------------------------------------------
def _start_serve():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "backdrop", "serve", "--port", "0", "-b", "#00b140",
                             "--allow-host", "studio.lan", "--allow-host", "Cam.Example:8443"],
                            stderr=subprocess.PIPE, text=True, env=env)
    for _ in range(100):
        line = proc.stderr.readline()
        m = re.search(r"open (http://127\.0\.0\.1:\d+/)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError("serve did not print its address")


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_with_a_peer_connected_exits_promptly(signum, code):
    proc, url = _start_serve()
    try:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        for host, want in (("studio.lan", 200), (f"cam.example:{port}", 200), ("evil.example", 403)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/config", headers={"Host": host})
            assert conn.getresponse().status == want, host  # --allow-host, repeatable
            conn.close()
        for junk in (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1garbage\r\n\r\n",
                     b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
                     b"\x00\xff" * 300 + b"\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(junk)
                assert s.recv(64).startswith(b"HTTP/1.0 400")

        async def main():
            c = Client(url, FRAMES, fps=15)
            await c.connect()
            await c.wait_frames(5)
            t0 = time.monotonic()
            proc.send_signal(signum)
            while proc.poll() is None and time.monotonic() - t0 < 10:
                await asyncio.sleep(0.02)
            took = time.monotonic() - t0
            await c.close()
            return took
        took = arun(main)
        rc = proc.wait(10)
        err = proc.stderr.read()
    finally:
        proc.kill()
    print(f"\n{signal.Signals(signum).name} with a peer streaming: exit {rc} after {took:.2f} s")
    assert rc == code, err[-2000:]
    assert took < 2.5, took
    assert "Traceback" not in err, err[-3000:]
    bad = [ln for ln in err.splitlines() if "Error handling request" in ln]
    assert len(bad) == 3, err[-2000:]  # one line per malformed request


# -- 7. the idle watchdog counts packets, not only decoded frames --------------------------------------------
def test_a_peer_still_sending_packets_is_not_dropped_as_idle(monkeypatch):
    """A low-bitrate peer that lost one packet decodes nothing until its next keyframe, yet it is
    connected and sending. Here the server's decoder output stops after 5 frames (the remote track
    blocks, as while waiting for a keyframe) while the client goes on sending: the peer must stay,
    with a 1.5 s idle timeout. Once the client stops sending RTP (its track blocks; DTLS and RTCP
    go on), it is closed as idle. Before: dropped 1.5 s after its last decoded frame."""
    from backdrop.web.publisher import PublisherPeer

    original = PublisherPeer.attach
    decoded = {"n": 0}

    def attach(self, track):
        if track.kind == "video":
            real = track.recv

            async def recv():
                decoded["n"] += 1
                if decoded["n"] > 5:
                    await asyncio.Event().wait()  # no more frames out of the decoder
                return await real()
            track.recv = recv
        original(self, track)

    monkeypatch.setattr(PublisherPeer, "attach", attach)
    cfg = ServerConfig(port=0, background="#00ff00", idle_timeout=1.5, connect_timeout=5.0, max_peers=2)
    with ServerThread(cfg) as srv:
        async def main():
            pub = Client(srv.url, FRAMES, fps=15)
            await pub.connect()
            await pub.wait_frames(3)
            loop = asyncio.get_running_loop()
            # 3 x the idle timeout with no decoded frame, packets arriving all along
            await asyncio.sleep(4.5)
            assert decoded["n"] > 5
            assert srv.stats()["publishers"] == 1, "dropped while still sending"
            assert pub.pc.connectionState == "connected"
            sender = next(s for s in pub.pc.getSenders() if s.track is not None and s.track.kind == "video")

            async def silent():
                await asyncio.Event().wait()
            sender.track.recv = silent  # the client stops sending video packets, stays connected
            gone = await loop.run_in_executor(None, wait_for, lambda: srv.stats()["publishers"] == 0, 10.0)
            assert gone, "a peer that sends no packets was not closed as idle"
            await pub.close()
        arun(main)
