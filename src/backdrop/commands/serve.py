"""``backdrop serve``: a web page that shows the browser's camera with a new background, live."""

from __future__ import annotations

import sys

from .common import add_pipeline_args, add_upscale_arg, pipeline_options, upscale_of


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a web page: your camera with a new background, processed in the browser or here",
        description="Serve a page that replaces the browser camera's background in real time: on the "
                    "user's own device by default (LiteRT.js + WebGL2 in the page; the runtime is fetched "
                    "once from the npm registry, integrity-checked and cached), or on this machine over "
                    "WebRTC (the page's switch, or --process-on server). /viewer receives the processed "
                    "stream. Binds 127.0.0.1 unless --host says otherwise. Needs the [web] "
                    'extra: pip install -e ".[web]"',
        # no abbreviations: a prefix of one flag must never be taken for another (--key, the chroma
        # key, was once also the TLS key here)
        allow_abbrev=False)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", "-p", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument("--background", "-b", default="blur", metavar="BG",
                   help="starting background for every peer: any live --background (default blur)")
    p.add_argument("--max-peers", type=int, default=4, metavar="N",
                   help="browsers sending a camera at once (default 4); more are refused clearly")
    p.add_argument("--max-viewers", type=int, default=16, metavar="N", help="viewer pages at once (default 16)")
    p.add_argument("--max-upload-mb", type=float, default=8.0, metavar="MB",
                   help="largest background upload (default 8 MB)")
    p.add_argument("--idle-timeout", type=float, default=10.0, metavar="S",
                   help="drop a peer that sends no video (no frame, no packet) for S seconds (default 10)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also accept requests whose Host header is NAME (repeatable; by default only the "
                        "address the server listens on, and localhost on loopback: no DNS rebinding)")
    p.add_argument("--process-on", choices=("device", "server"), default="device",
                   help="where the page processes by default: device (in the browser: WASM + WebGL, "
                        "nothing sent to this machine but signalling) or server (the camera is sent here "
                        "over WebRTC); the page has a switch (default device)")
    p.add_argument("--frame-worker", choices=("process", "thread"), default="process",
                   help="where a server-processed stream's pipeline runs: its own process (default: the "
                        "event loop's work never waits on a frame) or a thread of the server")
    p.add_argument("--tls-cert", "--cert", dest="tls_cert", default=None, metavar="PEM",
                   help="TLS certificate chain (PEM): serve https:// (browsers allow the camera off "
                        "localhost only on https)")
    p.add_argument("--tls-key", dest="tls_key", default=None, metavar="PEM",
                   help="the TLS certificate's private key (PEM; not --key, which is the chroma key)")
    add_pipeline_args(p, background=False, presenter=False)  # --model (pages may switch between known models), stages
    add_upscale_arg(p)  # server mode: each composite x2 before it is sent (the page upscales on its own)
    p.set_defaults(func=run)


def run(args) -> int:
    import ipaddress
    import os

    from ..compose.backgrounds import parse_background
    from ..errors import OptionError, Terminated
    from ..web.server import ServerConfig, serve

    if not 0.001 <= args.max_upload_mb <= 512:
        raise OptionError("--max-upload-mb must be between 0.001 and 512")
    if args.key and (os.sep in args.key or args.key.lower().endswith((".pem", ".key", ".crt", ".cer"))):
        raise OptionError(f"--key is the chroma key (green, blue, #RRGGBB or auto), not a file: for https give "
                          f"--tls-cert CERT.pem --tls-key {args.key}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise OptionError("--tls-cert and --tls-key go together")
    if not 0 < args.idle_timeout <= 3600:
        raise OptionError(f"--idle-timeout must be in (0, 3600], got {args.idle_timeout:g}")
    from ..web.loop import chosen_loop

    chosen_loop()  # a wrong BACKDROP_EVENT_LOOP: one line now, before the model and the server are made
    options = pipeline_options(args)
    config = ServerConfig(host=args.host, port=args.port, max_peers=args.max_peers, max_viewers=args.max_viewers,
                          max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), background=args.background,
                          model=options.model, threads=options.threads, options=options,
                          idle_timeout=args.idle_timeout, allow_hosts=tuple(args.allow_host),
                          process_on=args.process_on, upscale=upscale_of(args), frame_worker=args.frame_worker,
                          certfile=args.tls_cert, keyfile=args.tls_key).validate()
    from ..models import load_model

    parse_background(args.background).close()  # a bad --background fails now, not per peer
    load_model(options.model, threads=options.threads, quiet=args.quiet)  # fetch/verify it now, not per peer
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"backdrop: {msg}", file=sys.stderr, flush=True))
    if args.process_on == "device":
        fetch_browser_runtime(say, quiet=args.quiet)
    if not config.loopback:
        try:
            public = not ipaddress.ip_address(args.host).is_private
        except ValueError:
            public = True
        say(f"listening on {args.host}: other machines can reach this server"
            + (" (a public address!)" if public else ""))
        if not args.tls_cert:
            say("browsers allow the camera only on https:// or localhost: add --tls-cert and --tls-key")

    def ready(url: str) -> None:
        say(f"open {url} (viewer: {url}viewer); Ctrl-C to stop")

    try:
        signum = serve(config, on_ready=ready)
    except KeyboardInterrupt:  # stopping is the normal way out (a signal before the loop ran)
        signum = 2
    except Terminated:
        signum = 15
    say("stopped" + (" (SIGTERM)" if signum == 15 else ""))
    return 128 + signum if signum else 0


def fetch_browser_runtime(say, *, quiet: bool) -> bool:
    """The on-device page's npm packages, fetched once (integrity-checked) or taken from the cache.
    Offline on a first run: the page falls back to server processing, and says why."""
    from ..errors import BackdropError
    from ..web.npm import fetch_all
    from ..web.packages import WEB_PACKAGES

    try:
        fetch_all(WEB_PACKAGES, quiet=quiet)
        return True
    except BackdropError as exc:
        say(f"on-device processing is unavailable ({exc}); pages will process on this server. "
            "Fetch later with: backdrop models --fetch web")
        return False
