"""``backdrop camera``: a webcam in, a virtual camera (or a preview, or a recording) out, live."""

from __future__ import annotations

import logging
import sys

from .common import add_pipeline_args, add_upscale_arg, background_from_args, pipeline_options, upscale_of

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "camera", help="webcam -> virtual camera, live (for Zoom, Meet, Teams, OBS)",
        description="Read a webcam, replace its background in real time and feed a virtual camera "
                    "(v4l2loopback on Linux, OBS virtual camera on Windows/macOS). Settings can be "
                    "changed while running: keys in the --preview window, POST /settings on the "
                    "--control port, or edits to the --config file. Needs the [live] extra for a virtual "
                    'camera: pip install -e ".[live]"')
    p.add_argument("--device", "-d", default="0", metavar="N|PATH|FILE",
                   help="camera index (0), device path (/dev/video0), or a video file played as a fake camera")
    p.add_argument("--width", type=int, default=1280, help="capture width (default 1280)")
    p.add_argument("--height", type=int, default=720, help="capture height (default 720)")
    p.add_argument("--fps", type=float, default=30.0, help="capture frame rate (default 30)")
    p.add_argument("--camera-backend", choices=["opencv", "pyav"], default="opencv",
                   help="how to read the camera (default opencv)")
    p.add_argument("--virtual-device", default=None, metavar="PATH",
                   help="virtual camera to feed (default: the first free one, e.g. /dev/video10)")
    p.add_argument("--pixel-format", choices=["yuyv", "i420", "rgb"], default="yuyv",
                   help="pixel format the virtual camera presents (default yuyv)")
    p.add_argument("--mirror", action="store_true", help="flip left-right (m toggles it while running)")
    p.add_argument("--preview", action="store_true", help="also show the result in a window (keys change settings)")
    p.add_argument("--output", "-o", default=None, metavar="FILE",
                   help="record to a video file instead of feeding a virtual camera")
    p.add_argument("--no-virtual", action="store_true", help="do not feed a virtual camera (preview only)")
    p.add_argument("--control", type=int, default=None, metavar="PORT",
                   help="serve GET/POST http://127.0.0.1:PORT/settings (JSON) to change settings live")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="watch this JSON file and apply its settings whenever it changes")
    p.add_argument("--no-pause", action="store_true",
                   help="keep processing even when nobody reads the virtual camera")
    p.add_argument("--no-effect", action="store_true", help="start with the effect off (space toggles)")
    p.add_argument("--queue", type=int, default=1, metavar="N",
                   help="frames each stage may hold before the oldest is dropped (default 1: lowest latency)")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="stop after N output frames")
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds")
    p.add_argument("--stats", type=float, default=5.0, metavar="S",
                   help="log fps and latency every S seconds (0: only at the end)")
    p.add_argument("--loop", action="store_true", help="with a file as --device: loop it forever")
    add_pipeline_args(p, presenter=True)
    add_upscale_arg(p)
    p.set_defaults(func=run)


MAX_SIDE = 7680  # 8K: no webcam captures more, and 100000x100000 would ask for 30 GB a frame


def run(args) -> int:
    from ..errors import OptionError
    from ..io.camera import open_camera
    from ..io.virtualcam import (FileSink, MultiSink, PreviewSink, VirtualCamSink, check_virtual_camera)
    from ..live import (KEY_HELP, ConfigWatcher, LiveLoop, LiveProcessor, LiveSettings, format_stats,
                        key_changes, open_control_server)
    from ..errors import Terminated

    if not 1 <= args.queue <= 64:
        raise OptionError(f"--queue must be between 1 and 64, got {args.queue}")
    for flag, value, top in (("--width", args.width, MAX_SIDE), ("--height", args.height, MAX_SIDE)):
        if not 16 <= value <= top:
            raise OptionError(f"{flag} must be between 16 and {top}, got {value}")
    if not 0 < args.fps <= 240:
        raise OptionError(f"--fps must be above 0 and at most 240, got {args.fps:g}")
    if args.frames is not None and args.frames < 1:
        raise OptionError(f"--frames must be positive, got {args.frames}")
    virtual = not args.output and not args.no_virtual
    if not virtual and not args.output and not args.preview:
        raise OptionError("nothing to show: drop --no-virtual, or add --preview or --output FILE")

    options = pipeline_options(args)
    upscale = upscale_of(args)
    if upscale:
        from ..superres.frames import check_size

        check_size(args.width, args.height, upscale)  # an 8K camera x2: one line, before the light
    settings = LiveSettings(effect=not args.no_effect, background=background_from_args(args),
                            model=options.model, mirror=args.mirror)
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"backdrop: {msg}", file=sys.stderr))

    # check everything a user can get wrong before the camera light turns on
    if virtual:
        check_virtual_camera(args.virtual_device)
    processor = LiveProcessor(settings, options=options, upscale=upscale)
    sinks = []
    closers = [processor.close]
    try:
        if args.output:
            sinks.append(FileSink(args.output, fps=args.fps))
        if virtual:
            sinks.append(VirtualCamSink(args.fps, device=args.virtual_device, pixel_format=args.pixel_format,
                                        watch_readers=not args.no_pause))
        preview = PreviewSink() if args.preview else None
        if preview:
            sinks.append(preview)
        sink = MultiSink(sinks)
        source = open_camera(args.device, width=args.width, height=args.height, fps=args.fps,
                             backend=args.camera_backend, loop=args.loop)
        closers.append(source.close)
        loop: LiveLoop | None = None

        def stats():
            return loop.stats.snapshot() if loop else {}

        if args.control is not None:
            ctl = open_control_server(processor, args.control, stats=stats)
            closers.append(ctl.close)
            say(f"settings: GET/POST {ctl.url}")
        if args.config:
            watcher = ConfigWatcher(args.config, processor).start()
            closers.append(watcher.close)
            say(f"settings: watching {watcher.path}")

        def poll() -> bool:
            if preview is None:
                return True
            if loop is not None:
                preview.text = format_stats(loop.stats.snapshot())
            for key in preview.poll():
                action = key_changes(key, processor.target)
                if action == "quit":
                    return False
                if action:
                    try:
                        processor.update(action)
                    except Exception as exc:  # a key must never stop the stream
                        log.warning("%s", exc)
            return True

        def on_stats(s):
            say(format_stats(s))

        loop = LiveLoop(source, processor, sink, queue_size=args.queue,
                        active=(lambda: sink.active) if not args.no_pause else None, poll=poll,
                        on_stats=on_stats if args.stats > 0 else None, stats_interval=args.stats or 5.0)
        say(f"{source.describe()} -> {sink.describe()}; Ctrl-C to stop")
        if preview:
            say(KEY_HELP)
        try:
            final = loop.run(max_frames=args.frames, duration=args.duration)
        except (KeyboardInterrupt, Terminated):  # stopping is how a live session ends
            loop.stop()
            final = loop.stats.snapshot()
        say("done: " + format_stats(final))
        sink.close()
        sinks = []
        if args.output:
            say(f"wrote {args.output}")
    except BaseException:
        for s in sinks:
            (getattr(s, "abort", None) or s.close)()
        raise
    finally:
        for close in reversed(closers):
            try:
                close()
            except Exception:  # pragma: no cover - best effort on the way out
                log.debug("close failed", exc_info=True)
    return 0
