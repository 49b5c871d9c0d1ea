"""Runtime settings for live streams, and the ways to change them without a restart.

A live stream cannot be restarted to change its background: the call is running. So the
settings (effect on/off, background, blur strength, colour, model, mirroring) live in a
:class:`LiveProcessor` that wraps a low-latency :class:`~backdrop.pipeline.Pipeline` and applies
a change between two frames. Changes come from several places that all share one validator
(:func:`apply_changes`), so a bad value gets the same one-line error everywhere:

- keys in the preview window (:func:`key_changes`),
- a local HTTP/JSON endpoint (:class:`ControlServer`, 127.0.0.1 only),
- a watched JSON file (:class:`ConfigWatcher`),
- the data channel of a WebRTC peer (``backdrop.web.server``).

Heavy work (decoding a background image, loading a model) happens in the caller's thread inside
:meth:`LiveProcessor.update`, never in the processing thread, so a change costs the video at
most the swap of two references.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from ..compose.background import DEFAULT_BLUR, NAMED_COLOURS, parse_background, parse_colour
from ..errors import BackdropError, OptionError
from ..io.threaded import Poller
from ..models import DEFAULT_MODEL, KNOWN_MODELS, load_model
from ..pipeline import Pipeline, PipelineOptions

log = logging.getLogger(__name__)

SETTING_KEYS = ("effect", "background", "colour", "color", "blur", "image", "model", "mirror", "slide")
COLOUR_CYCLE = ["#00b140", "#0047bb", "#ffffff", "#000000", "#808080"]
TIMER_RESET_FRAMES = 600  # Pipeline.timer keeps every sample; a live stream trims it regularly


@dataclass(frozen=True)
class LiveSettings:
    """What a live stream shows. ``background`` is any live-capable ``--background`` value."""

    effect: bool = True
    background: str = "blur"
    model: str = DEFAULT_MODEL
    mirror: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        kind, value = describe_background(self.background)
        d["kind"] = kind
        if kind == "blur":
            d["blur"] = value
        elif kind == "colour":
            d["colour"] = value
        return d


def describe_background(spec: str) -> tuple[str, Any]:
    """(kind, value) of a background spec: ``("blur", 12.0)``, ``("colour", "#00b140")``, ..."""
    low = spec.strip().lower()
    if low == "blur" or low.startswith("blur:"):
        value = low.partition(":")[2]
        try:
            return "blur", float(value) if value else DEFAULT_BLUR
        except ValueError:
            return "blur", DEFAULT_BLUR
    rgb = parse_colour(spec)
    if rgb is not None:
        return "colour", "#%02x%02x%02x" % rgb
    if low == "matte":
        return "matte", None
    return "image", spec


def _check_blur(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OptionError(f"blur must be a number in (0, 100], got {value!r}")
    try:
        strength = float(value)
    except ValueError:
        raise OptionError(f"blur must be a number in (0, 100], got {value!r}") from None
    if not math.isfinite(strength) or not 0 < strength <= 100:
        raise OptionError(f"blur must be a number in (0, 100], got {value!r}")
    return strength


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be true or false, got {value!r}")
    return value


def _check_str(name: str, value: Any, limit: int = 4096) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f"{name} must be a non-empty string, got {type(value).__name__}")
    if len(value) > limit:
        raise OptionError(f"{name} is too long ({len(value)} characters)")
    return value.strip()


def apply_changes(current: LiveSettings, changes: Mapping[str, Any], *, allow_files: bool = True,
                  known_uploads: Callable[[str], bool] | None = None) -> LiveSettings:
    """Validate ``changes`` (a JSON object) against ``current`` and return the new settings.

    Keys: ``effect`` (bool), ``background`` (spec), ``colour``/``color`` (``#rrggbb`` or a name),
    ``blur`` (strength in (0, 100]), ``image`` (a file path, or an upload id on the web),
    ``model``, ``mirror`` (bool), ``slide`` (``next``/``prev`` or a step: presenter mode, an
    action rather than a setting, see :func:`slide_step`). ``allow_files=False`` (the web) refuses file paths and model
    files: a browser may only pick colours, blur, its own uploads and the known model names.
    """
    if not isinstance(changes, Mapping):
        raise OptionError("settings must be a JSON object")
    unknown = [k for k in changes if k not in SETTING_KEYS]
    if unknown:
        raise OptionError(f"unknown setting {str(unknown[0])[:40]!r}: use {', '.join(SETTING_KEYS[:3])}, "
                          f"{', '.join(SETTING_KEYS[4:])}")
    new = current
    if "slide" in changes:
        slide_step(changes["slide"])  # validated here, acted on by LiveProcessor.update
    if "effect" in changes:
        new = replace(new, effect=_check_bool("effect", changes["effect"]))
    if "mirror" in changes:
        new = replace(new, mirror=_check_bool("mirror", changes["mirror"]))
    if "model" in changes:
        model = _check_str("model", changes["model"], 1024)
        if model not in KNOWN_MODELS and not allow_files:
            raise OptionError(f"unknown model {model[:40]!r}: choose {', '.join(KNOWN_MODELS)}")
        new = replace(new, model=model)
    if "background" in changes:
        new = replace(new, background=_check_background(
            _check_str("background", changes["background"]), allow_files, known_uploads))
    for key in ("colour", "color"):
        if key in changes:
            text = _check_str(key, changes[key], 64)
            rgb = parse_colour(text)
            if rgb is None:
                raise OptionError(f"{key} must be #rrggbb or one of {', '.join(NAMED_COLOURS)}, got {text[:40]!r}")
            new = replace(new, background="#%02x%02x%02x" % rgb)
    if "blur" in changes:
        new = replace(new, background=f"blur:{_check_blur(changes['blur']):g}")
    if "image" in changes:
        new = replace(new, background=_check_background(
            _check_str("image", changes["image"]), allow_files, known_uploads, image_only=True))
    return new


def _check_background(spec: str, allow_files: bool, known_uploads, image_only: bool = False) -> str:
    low = spec.lower()
    if low == "transparent":
        raise OptionError("a live stream has no alpha channel: use a colour, blur or an image")
    if not image_only:
        if low == "blur" or low.startswith("blur:"):
            return f"blur:{_check_blur(low.partition(':')[2] or DEFAULT_BLUR):g}"
        rgb = parse_colour(spec)
        if rgb is not None:
            return "#%02x%02x%02x" % rgb
        if low == "matte":
            return "matte"
    if known_uploads is not None and known_uploads(spec):
        return spec
    if not allow_files:
        raise OptionError(f"unknown background {spec[:40]!r}: use a colour, blur[:N] or an uploaded image")
    return spec


def slide_step(value: Any) -> int:
    """``next`` -> +1, ``prev`` -> -1, or a small whole number of slides to move."""
    if value in ("next", "prev"):
        return 1 if value == "next" else -1
    if isinstance(value, int) and not isinstance(value, bool) and -1000 <= value <= 1000:
        return value
    raise OptionError(f"slide must be 'next', 'prev' or a whole number, got {str(value)[:40]!r}")


class LiveProcessor:
    """A low-latency Pipeline plus runtime settings, safe to update from another thread.

    ``processor(frame)`` is called by the single processing thread; ``update(changes)`` by any
    other thread. ``update`` validates and builds the new background/model eagerly (so errors
    reach the caller, and the cost is not paid by a video frame) and parks them; the next frame
    swaps them in. ``resolve`` maps a background spec to what :func:`parse_background` takes,
    which is how the web server turns an upload id into the file in its temp dir.
    """

    def __init__(self, settings: LiveSettings | None = None, *, options: PipelineOptions | None = None,
                 pipeline: Pipeline | None = None, allow_files: bool = True,
                 resolve: Callable[[str], Any] | None = None,
                 known_uploads: Callable[[str], bool] | None = None):
        self.settings = settings or LiveSettings()
        self.options = options or PipelineOptions(model=self.settings.model, quiet=True)
        if options is not None and settings is not None and settings.model != options.model:
            self.options = replace(options, model=settings.model)
        self.allow_files = allow_files
        self.resolve = resolve or (lambda spec: spec)
        self.known_uploads = known_uploads
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._target = self.settings
        self._frames = 0
        if pipeline is None:
            _check_background(self.settings.background, True, None)
            pipeline = Pipeline(background=self.resolve(self.settings.background), options=self.options,
                                live=True)
        self.pipeline = pipeline

    @property
    def target(self) -> LiveSettings:
        """The settings as last requested (applied at the next frame)."""
        with self._lock:
            return self._target

    def update(self, changes: Mapping[str, Any]) -> LiveSettings:
        """Validate ``changes``, prepare what they need, and queue them for the next frame."""
        with self._lock:
            base = self._target
        new = apply_changes(base, changes, allow_files=self.allow_files, known_uploads=self.known_uploads)
        pending: dict[str, Any] = {}
        if "slide" in changes:
            pending["slide"] = slide_step(changes["slide"])
        if new.background != base.background:
            pending["background"] = parse_background(self.resolve(new.background))
        if new.model != base.model:
            pending["segmenter"] = load_model(new.model, threads=self.options.threads, quiet=True)
        with self._lock:
            old = self._pending
            if "background" in pending and "background" in old:
                old.pop("background").close()
            if "slide" in pending and "slide" in old:
                pending["slide"] += old.pop("slide")
            old.update(pending)
            self._target = new
        return new

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            target = self._target
        if "background" in pending:
            old = self.pipeline.background
            self.pipeline.background = pending["background"]
            old.close()
        if "segmenter" in pending:
            self.pipeline.segmenter = pending["segmenter"]
            self.pipeline.reset()
        if "slide" in pending and hasattr(self.pipeline.background, "advance"):
            self.pipeline.background.advance(pending["slide"])
        self.settings = target

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One frame through the current settings (RGB uint8 in, RGB uint8 out, same size)."""
        if self._pending or self.settings is not self._target:
            self._apply_pending()
        s = self.settings
        if s.effect:
            out = self.pipeline(frame)
            if out.ndim == 2:  # matte view
                out = np.repeat(out[..., None], 3, axis=2)
            elif out.shape[2] == 4:  # pragma: no cover - transparent is refused above
                out = np.ascontiguousarray(out[..., :3])
        else:
            out = frame
        if s.mirror:
            out = np.ascontiguousarray(out[:, ::-1])
        self._frames += 1
        if self._frames % TIMER_RESET_FRAMES == 0:
            self.pipeline.timer.reset()
        return out

    def state(self) -> dict[str, Any]:
        return self.target.to_dict()

    def close(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if "background" in pending:
            pending["background"].close()
        self.pipeline.close()


# -- keyboard ---------------------------------------------------------------------------------
KEY_HELP = ("keys: space/e effect on/off, b blur, +/- blur strength, c next colour, "
            "m mirror, n/p next/previous slide (presenter), q/Esc quit")


def key_changes(key: str, settings: LiveSettings) -> dict[str, Any] | str | None:
    """What a key pressed in the preview window does: a settings change, ``"quit"`` or None."""
    kind, value = describe_background(settings.background)
    if key in ("q", "\x1b"):
        return "quit"
    if key in (" ", "e"):
        return {"effect": not settings.effect}
    if key == "m":
        return {"mirror": not settings.mirror}
    if key in ("n", "p"):
        return {"slide": "next" if key == "n" else "prev"}
    if key == "b":
        return {"blur": value if kind == "blur" else DEFAULT_BLUR, "effect": True}
    if key in ("+", "=", "-", "_"):
        strength = value if kind == "blur" else DEFAULT_BLUR
        step = 2.0 if key in ("+", "=") else -2.0
        return {"blur": min(100.0, max(1.0, strength + step)), "effect": True}
    if key == "c":
        current = value if kind == "colour" else None
        i = COLOUR_CYCLE.index(current) + 1 if current in COLOUR_CYCLE else 0
        return {"colour": COLOUR_CYCLE[i % len(COLOUR_CYCLE)], "effect": True}
    return None


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
