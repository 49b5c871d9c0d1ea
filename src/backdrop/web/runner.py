"""Running the server: bind (with optional TLS), ``serve`` for the CLI, ``ServerThread`` to embed.

Kept apart from the app so the event-loop and thread plumbing (ports, certificates, clean
shutdown of whatever aiortc leaves behind) does not crowd the request handling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import signal
import ssl
import threading
from typing import Any

from .app import BackdropServer
from .config import ServeError, ServerConfig
from .guard import limit_connections, server_logger
from .loop import new_event_loop
from .protocol import one_line


def _ssl_context(cfg: ServerConfig) -> ssl.SSLContext | None:
    if not cfg.certfile:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cfg.certfile, cfg.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ServeError(f"cannot load --tls-cert/--tls-key: {one_line(exc)}") from None
    return ctx


async def start_site(server: BackdropServer):
    """Bind and start; returns (runner, url). A busy port is a user error."""
    from aiohttp import web

    cfg = server.config
    if cfg.frame_worker == "process":
        from .frame_worker import warm

        warm()  # the forkserver imports the pipeline now, not during the first offer
    # keepalive_timeout doubles as the header timeout: aiohttp arms it when a connection opens
    # and closes a connection whose request is not complete by then (slowloris)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=1.0,
                           keepalive_timeout=cfg.header_timeout, logger=server_logger())
    await runner.setup()
    limit_connections(runner.server, cfg.max_connections)
    ctx = _ssl_context(cfg)
    site = web.TCPSite(runner, cfg.host, cfg.port, ssl_context=ctx)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ServeError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc} "
                         "(choose another --port)") from None
    sockets = site._server.sockets if site._server else []  # the real port when --port 0
    port = sockets[0].getsockname()[1] if sockets else cfg.port
    scheme = "https" if ctx else "http"
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    return runner, f"{scheme}://{host}:{port}/"


def serve(config: ServerConfig, *, on_ready=None) -> int:
    """Run the server until Ctrl-C / SIGTERM (the CLI); returns the signal that stopped it.

    The signals are handled on the event loop (not as exceptions thrown into whatever runs), so
    a stop closes every peer (bounded to ~1.5 s), then the listener, and the process can exit at
    once with 128 + signal.
    """
    server = BackdropServer(config)
    stopped = {"signal": 0}

    async def main():
        runner, url = await start_site(server)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal(signum: int) -> None:
            stopped["signal"] = signum
            stop.set()

        installed = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, not the main thread
                pass
        if on_ready:
            on_ready(url)
        try:
            await stop.wait()
        finally:
            for signum in installed:
                loop.remove_signal_handler(signum)
            try:
                await asyncio.wait_for(server.close_all("server shutting down"), 1.5)
            except (asyncio.TimeoutError, Exception):
                pass
            await runner.cleanup()
            # whatever aiortc left behind (timers of closed transports) is cancelled, not awaited
            for t in asyncio.all_tasks():
                if t is not asyncio.current_task():
                    t.cancel()

    try:
        with asyncio.Runner(loop_factory=new_event_loop) as loop_runner:
            loop_runner.run(main())
    finally:
        shutil.rmtree(server.upload_root, ignore_errors=True)
    return stopped["signal"]


class ServerThread:
    """The server on its own event loop in a background thread (tests, benchmarks, embedding).

    >>> with ServerThread(ServerConfig(port=0)) as srv:   # doctest: +SKIP
    ...     print(srv.url)
    """

    def __init__(self, config: ServerConfig | None = None):
        self.config = dataclasses.replace(config or ServerConfig(port=0))
        self.server: BackdropServer | None = None
        self.url = ""
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._run, name="backdrop-serve", daemon=True)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._runner = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def boot():
            self.server = BackdropServer(self.config)
            self._runner, self.url = await start_site(self.server)

        try:
            self.loop.run_until_complete(boot())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        try:
            self.loop.run_until_complete(self._runner.cleanup())
            # whatever aiortc left behind (timers of closed transports) is cancelled, not leaked
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()
            if self.server is not None:
                shutil.rmtree(self.server.upload_root, ignore_errors=True)

    def start(self) -> "ServerThread":
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn, timeout: float = 30.0):
        """Run ``fn()`` (a plain function or a coroutine function) on the server's loop."""
        async def wrapper():
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout)

    def stats(self) -> dict[str, Any]:
        return self.call(self.server.stats)

    def stop(self) -> None:
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
