"""Ways to change a live stream's settings without a restart: a local HTTP/JSON endpoint and a
watched JSON file (keys are in ``settings.py``, the web data channel in ``backdrop.web``).

Both hand a JSON object to :meth:`LiveProcessor.update`, which validates it with the one
validator (:func:`~backdrop.live.settings.apply_changes`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..errors import BackdropError, OptionError
from ..io.threaded import Poller
from .processor import LiveProcessor

log = logging.getLogger(__name__)


# -- HTTP/JSON endpoint -------------------------------------------------------------------------
MAX_BODY = 64 * 1024
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]"}


class ControlServer:
    """A local HTTP/JSON endpoint: ``GET /settings`` and ``POST /settings`` with a JSON object.

    Bound to 127.0.0.1 only. A web page in the user's browser could still try to reach it, so a
    POST must say ``Content-Type: application/json`` (which a cross-site page cannot send without
    a CORS preflight this server never answers), and the ``Host`` header must name the loopback
    address (which defeats DNS rebinding).
    """

    def __init__(self, processor: LiveProcessor, port: int = 0, *, host: str = "127.0.0.1",
                 stats: Callable[[], dict] | None = None):
        self.processor = processor
        self.stats = stats
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "backdrop"

            def log_message(self, fmt, *args):  # quiet: route to logging
                log.debug("control: " + fmt, *args)

            def _send(self, code: int, obj: Any) -> None:
                body = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _host_ok(self) -> bool:
                host = (self.headers.get("Host") or "").strip().lower()
                name = host.split("]")[0] + "]" if host.startswith("[") else host.split(":")[0]
                return name in LOCAL_HOSTS

            def do_GET(self):
                if not self._host_ok():
                    return self._send(403, {"error": "only local requests are allowed"})
                if self.path.split("?")[0] in ("/", "/settings"):
                    return self._send(200, server.describe())
                return self._send(404, {"error": "not found: use GET or POST /settings"})

            def do_POST(self):
                if not self._host_ok():
                    return self._send(403, {"error": "only local requests are allowed"})
                if self.path.split("?")[0] != "/settings":
                    return self._send(404, {"error": "not found: POST /settings"})
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                if ctype != "application/json":
                    return self._send(415, {"error": "send Content-Type: application/json"})
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                except ValueError:
                    length = -1
                if not 0 < length <= MAX_BODY:
                    return self._send(400 if length <= 0 else 413,
                                      {"error": f"body must be a JSON object of at most {MAX_BODY} bytes"})
                try:
                    changes = json.loads(self.rfile.read(length))
                except (ValueError, UnicodeDecodeError, RecursionError):
                    return self._send(400, {"error": "body is not valid JSON"})
                try:
                    server.processor.update(changes)
                except BackdropError as exc:
                    return self._send(400, {"error": str(exc)})
                return self._send(200, server.describe())

            do_PUT = do_POST

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}/settings"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="backdrop-control",
                                        kwargs={"poll_interval": 0.2}, daemon=True)

    def describe(self) -> dict[str, Any]:
        out = {"settings": self.processor.state()}
        if self.stats is not None:
            out["stats"] = self.stats()
        return out

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(2)


def open_control_server(processor: LiveProcessor, port: int, **kw) -> ControlServer:
    """Start a :class:`ControlServer`; a busy or impossible port is a user error, not a traceback."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise OptionError(f"cannot open the control port {port}: use 1-65535 (0: any free port)")
    try:
        return ControlServer(processor, port, **kw).start()
    except OSError as exc:
        raise OptionError(f"cannot open the control port {port}: {exc.strerror or exc}") from None


# -- watched config file ----------------------------------------------------------------------------
class ConfigWatcher(Poller):
    """Apply a JSON settings file whenever it changes (polled; no extra dependency).

    The file holds the same object as ``POST /settings``. A file that does not parse, or holds a
    bad value, logs one warning and leaves the running settings alone: a half-saved file from an
    editor must never stop the stream.
    """

    def __init__(self, path: Path, processor: LiveProcessor, *, interval: float = 0.5):
        self.path = Path(path).expanduser()
        self.processor = processor
        self._stamp: tuple[float, int] | None = None
        self.applied = 0
        self.errors = 0
        super().__init__(interval)

    def check(self) -> bool:
        """Apply the file if it changed since the last look; True when something was applied."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            text = self.path.read_text(encoding="utf-8")
            if len(text) > MAX_BODY:
                raise OptionError(f"config file is over {MAX_BODY} bytes")
            try:
                changes = json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise OptionError(f"config file is not valid JSON: {str(exc)[:120]}") from None
            self.processor.update(changes)
        except (BackdropError, OSError, UnicodeDecodeError) as exc:
            self.errors += 1
            log.warning("ignoring %s: %s", self.path.name, exc)
            return False
        self.applied += 1
        log.info("applied settings from %s", self.path.name)
        return True

    name = "backdrop-config"

    def poll(self) -> None:
        self.check()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed (tests and tools)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
