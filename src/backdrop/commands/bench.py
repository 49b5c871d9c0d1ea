"""``backdrop bench [CLIP]``: per-stage ms, end-to-end vs bare-transcode frames/s, latency, memory."""

from __future__ import annotations

import json
import sys

from .common import add_pipeline_args, pipeline_options


def register(sub) -> None:
    p = sub.add_parser(
        "bench", help="measure speed: per-stage ms, frames/s vs a bare transcode, latency, memory",
        description="Measure the pipeline's speed on a clip, or (no clip) on clips generated at "
                    "480p/720p/1080p/4K from a real clip of people: per-stage ms/frame "
                    "(decode ... encode; min/median/p95), end-to-end frames/s of `backdrop video` "
                    "next to a bare transcode of the same clip with the same settings (and their "
                    "ratio), live-mode latency p50/p95, and peak memory. Absolute numbers belong to "
                    "this machine; the ratio travels.")
    p.add_argument("clip", nargs="?", default=None,
                   help="video to benchmark (default: generated clips at --sizes from a shared real clip)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--sizes", default=None, metavar="LIST",
                   help="comma-separated sizes, e.g. 480p,720p,1080p,4k or 1280x720 (default without a "
                        "clip: 480p,720p,1080p,4k; with a clip: its own size, or the clip scaled to these)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames per run (default: 60 for generated clips, the whole clip otherwise)")
    p.add_argument("--repeat", type=int, default=1, metavar="N",
                   help="repeat the transcode/end-to-end pair N times and keep the best of each (default 1)")
    add_pipeline_args(p, background=True)
    p.add_argument("--crf", type=int, default=20, help="H.264 quality for both runs (default 20, as `backdrop video`)")
    p.add_argument("--preset", default="veryfast", help="x264 preset for both runs (default veryfast)")
    p.add_argument("--no-audio", action="store_true", help="drop the audio in both runs")
    p.add_argument("--no-e2e", action="store_true",
                   help="skip the file-to-file runs (stages then come from the pipeline alone, no encode)")
    p.add_argument("--no-live", action="store_true", help="skip the live-latency run")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocess")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..bench import BenchConfig, format_text, parse_sizes, run_bench

    cfg = BenchConfig(clip=args.clip, sizes=parse_sizes(args.sizes), frames=args.frames,
                      options=pipeline_options(args), background=args.background, crf=args.crf,
                      preset=args.preset, repeat=args.repeat, e2e=not args.no_e2e, live=not args.no_live,
                      memory=not args.no_memory, keep_audio=not args.no_audio).validate()
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"backdrop bench: {msg}",
                                                                                 file=sys.stderr, flush=True))
    result = run_bench(cfg, say=say)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    return 0
