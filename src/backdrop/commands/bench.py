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
    p.add_argument("--upscale", action="store_true",
                   help="measure the x2 upscaler instead: Y-PSNR/SSIM of bilinear, bicubic, Lanczos, FSR 1 and "
                        "ours on the held-out clip (or CLIP) after a call-like H.264/VP8 degradation, and ms per "
                        "360p -> 720p frame")
    p.set_defaults(func=run)


def run_upscale(args) -> int:
    """``backdrop bench --upscale``: the anchor table (docs/benchmarks.md, benchmarks/upscale.py)."""
    from pathlib import Path

    from ..bench import describe_machine, machine_info, shared_data_dir
    from ..errors import InputError
    from ..superres.anchors import HELD_OUT, markdown, quality, read_frames, speed

    clip = Path(args.clip) if args.clip else shared_data_dir().joinpath(*HELD_OUT)
    if not clip.is_file():
        raise InputError(f"clip not found: {clip}")
    say = (lambda msg: None) if args.quiet else (lambda msg: print(f"backdrop bench: {msg}", file=sys.stderr,
                                                                   flush=True))
    say(f"upscale quality on {clip.name} (call-like H.264 / VP8 degradation)...")
    q = quality(clip, frames=args.frames or 60)
    say("upscale speed, 640x360 -> 1280x720...")
    import cv2

    frame = cv2.resize(read_frames(clip, 1)[0], (640, 360), interpolation=cv2.INTER_AREA)
    sp = speed(frame, reps=max(10, 10 * args.repeat))
    result = {"machine": machine_info(), "quality": q, "speed": sp}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(describe_machine(result["machine"]))
        print(markdown(q, sp))
        print(f"load average before / after the speed runs: {sp['load_before']} / {sp['load_after']}")
    return 0


def run(args) -> int:
    if args.upscale:
        return run_upscale(args)
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
