"""``backdrop video IN OUT``: replace the background of a video file."""

from __future__ import annotations

import sys

from .common import add_pipeline_args, add_upscale_arg, background_from_args, pipeline_options, upscale_of


def register(sub) -> None:
    p = sub.add_parser("video", help="replace the background of a video file",
                       description="Replace, blur or remove the background of a video file. Audio, frame "
                                   "count and timing are kept; rotated phone videos come out upright.")
    p.add_argument("input", help="input video (anything FFmpeg reads)")
    p.add_argument("output", help="output video: .mp4/.mkv (H.264), .webm (VP9), .mov; "
                                  "transparent: .mov (ProRes 4444) or .webm (VP9 alpha)")
    add_pipeline_args(p, presenter=True)
    p.add_argument("--crf", type=int, default=20, help="H.264 quality, 0-51, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    p.add_argument("--no-audio", action="store_true", help="drop the audio")
    p.add_argument("--strict", action="store_true",
                   help="an input that looks cut short or damaged is an error (exit 2, no output) "
                        "instead of a warning")
    add_upscale_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..process import process_video

    upscale = upscale_of(args)
    stats = process_video(args.input, args.output, background=background_from_args(args), crf=args.crf,
                          preset=args.preset, keep_audio=not args.no_audio, quiet=args.quiet, strict=args.strict,
                          options=pipeline_options(args), upscale=upscale)
    if not args.quiet:
        from ..errors import escape_controls

        print(escape_controls(f"backdrop: wrote {args.output}: {stats['frames']} frames in {stats['seconds']:.1f} s "
              f"({stats['fps']:.1f} frames/s)"), file=sys.stderr)
    return 0
