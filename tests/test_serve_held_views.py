"""Viewers' offers to on-device streams whose page never answers: each waits up to 15 s for the
page's answer on a connection the connection cap cannot evict (a request being served). Before,
nothing capped those waits: from a few loopback addresses (each with its own offer bucket) they
filled the cap and real requests were reset. Now they are capped per stream and in all (503
beyond, at once), and a real client, and a real viewer of a live page, still get through."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")

from backdrop.web import local  # noqa: E402
from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402
from test_serve_hardening import port_of, request  # noqa: E402
from test_web_local import _read, post, viewer_offer  # noqa: E402

ADDRESSES = [f"127.0.0.{i}" for i in range(2, 8)]  # a handful of loopback addresses, one offer bucket each


def _send(srv, source: str, method: str, path: str, body: bytes = b"", headers: str = "") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port_of(srv)), timeout=10, source_address=(source, 0))
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port_of(srv)}\r\n{headers}"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return s


def _register(srv, source: str) -> dict:
    s = _send(srv, source, "POST", "/local", b"{}", "Content-Type: application/json\r\n")
    try:
        code, body = _read(s, timeout=10)
        assert code == "200", (code, body)
        return json.loads(body)
    finally:
        s.close()


def test_held_viewer_offers_are_capped_and_a_real_client_gets_in():
    cfg = ServerConfig(port=0, max_connections=32)  # default offer bucket (3/s, burst 6) per address
    with ServerThread(cfg) as srv:
        per_stream = getattr(local, "VIEWS_PER_STREAM", 4)
        in_all = max(per_stream, cfg.max_connections // getattr(local, "VIEWS_SHARE", 8))
        # one silent stream per address (registered, never polling, never answering), registered from
        # 127.0.0.1, so that every address has its whole burst of 6 offers for viewing
        pubs = {a: _register(srv, "127.0.0.1") for a in ADDRESSES}
        offer = json.dumps({"sdp": viewer_offer(), "type": "offer", "token": ""})
        held: list[socket.socket] = []
        answers: dict[str, int] = {}
        try:
            for _ in range(6):  # every address's burst of 6: 36 viewer offers, more than the 32 connections
                for a, pub in pubs.items():
                    body = offer.replace('"token": ""', f'"token": "{pub["token"]}"').encode()
                    held.append(_send(srv, a, "POST", "/view", body, "Content-Type: application/json\r\n"))
            time.sleep(1.0)
            # the real client, while they wait (before: every connection was a held offer, and the
            # newcomer was refused: "Remote end closed connection without response")
            for _ in range(3):
                t0 = time.monotonic()
                assert request(srv, "GET", "/config")[0] == 200
                assert time.monotonic() - t0 < 2.0
            waiting = srv.stats().get("local_views_waiting")
            for s in held:
                code, _ = _read(s, timeout=0.2)
                answers[str(code)] = answers.get(str(code), 0) + 1
            # in_all wait; the rest got 503 at once (a few 429: the address's bucket, which the registration
            # drew on too; a few closed by the cap before their request was read, as idle connections)
            assert waiting == in_all and answers.get("None") == in_all, (waiting, answers)
            assert set(answers) <= {"None", "503", "429", "closed"} and answers.get("503", 0) >= 20, answers
            assert srv.stats()["guarded"].get("views", 0) == answers["503"]
        finally:
            for s in held:
                s.close()


def test_one_stream_holds_a_few_and_its_real_viewers_still_connect():
    cfg = ServerConfig(port=0, offer_rate=100.0, offer_burst=100)
    with ServerThread(cfg) as srv:
        per_stream = getattr(local, "VIEWS_PER_STREAM", 4)
        silent = post(srv, "/local", {})[1]
        live = post(srv, "/local", {})[1]
        offer = viewer_offer()
        held = [_send(srv, "127.0.0.1", "POST", "/view",
                      json.dumps({"sdp": offer, "type": "offer", "token": silent["token"]}).encode(),
                      "Content-Type: application/json\r\n") for _ in range(per_stream + 3)]
        try:
            time.sleep(0.5)
            codes = [_read(s, timeout=0.2)[0] for s in held]
            assert codes.count(None) == per_stream and codes.count("503") == 3, codes
            status, body = post(srv, "/view", {"sdp": offer, "type": "offer", "token": silent["token"]})
            assert status == 503 and "this stream" in body["error"] and "\n" not in body["error"]
            # a live page's viewer is not held up by the silent stream's
            result = {}
            t = threading.Thread(target=lambda: result.update(
                view=post(srv, "/view", {"sdp": offer, "type": "offer", "token": live["token"]})))
            t.start()
            status, raw = request(srv, "GET", f"/local/{live['id']}/next", headers={"X-Backdrop-Secret": live["secret"]})
            got = json.loads(raw)
            answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            assert post(srv, f"/local/{live['id']}/answer", {"secret": live["secret"], "viewer": got["viewer"],
                                                             "type": "answer", "sdp": answer})[0] == 200
            t.join(10)
            assert result["view"][0] == 200 and result["view"][1]["sdp"] == answer
        finally:
            for s in held:
                s.close()
        # closed by their clients: the waits end with them (at the latest after the answer time)
        end = time.monotonic() + local.ANSWER_SECONDS + 2
        while srv.stats().get("local_views_waiting") and time.monotonic() < end:
            time.sleep(0.2)
        assert srv.stats().get("local_views_waiting") == 0
