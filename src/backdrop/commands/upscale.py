"""``backdrop upscale IN OUT [--scale 2]``: super-resolve a video or an image x2."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("upscale", help="make a video or an image twice as large, sharper than plain scaling",
                       description="Super-resolve a video or an image x2 with Backdrop's own small network "
                                   "(trained on call-compressed video; luma by the network, colour "
                                   "bilinear). Video keeps its audio, frame count and timing.")
    p.add_argument("input", help="input video (anything FFmpeg reads) or image (.jpg/.png/.webp)")
    p.add_argument("output", help="output video (.mp4/.mkv/.webm/.mov) or image (.png/.jpg/.webp)")
    p.add_argument("--scale", type=int, default=2, help="size factor; only 2 is trained (default 2)")
    p.add_argument("--crf", type=int, default=20, help="H.264 quality for video, 0-51 (default 20)")
    p.add_argument("--preset", default="veryfast", help="x264 preset for video (default veryfast)")
    p.add_argument("--no-audio", action="store_true", help="drop the audio")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import escape_controls
    from ..superres.files import is_video, upscale_image, upscale_video
    from ..superres.frames import check_scale

    check_scale(args.scale)  # before anything is opened: --scale 3 is one line
    src = Path(args.input)
    if is_video(src):
        stats = upscale_video(src, args.output, scale=args.scale, crf=args.crf, preset=args.preset,
                              keep_audio=not args.no_audio, quiet=args.quiet)
        line = (f"backdrop: wrote {args.output}: {stats['frames']} frames at {stats['width']}x{stats['height']} "
                f"in {stats['seconds']:.1f} s ({stats['fps']:.1f} frames/s)")
    else:
        stats = upscale_image(src, args.output, scale=args.scale)
        line = f"backdrop: wrote {args.output}: {stats['width']}x{stats['height']}"
    if not args.quiet:
        print(escape_controls(line), file=sys.stderr)
    return 0
