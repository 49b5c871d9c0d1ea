"""``backdrop image IN OUT``: replace the background of a photo or a folder of photos."""

from __future__ import annotations

import sys

from .common import add_pipeline_args, add_upscale_arg, background_from_args, pipeline_options, upscale_of


def register(sub) -> None:
    p = sub.add_parser("image", help="replace the background of an image or a folder of images",
                       description="Replace, blur or remove the background of an image (JPEG/PNG/WebP; same "
                                   "size out) or of every image in a folder (OUT is then a folder).")
    p.add_argument("input", help="input image or folder of images")
    p.add_argument("output", help="output image (.png/.jpg/.webp) or folder")
    add_pipeline_args(p, video=False, presenter=True)
    add_upscale_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..process import process_image

    from ..errors import escape_controls

    upscale = upscale_of(args)
    stats = process_image(args.input, args.output, background=background_from_args(args), quiet=args.quiet,
                          options=pipeline_options(args), upscale=upscale)
    failed = stats.get("failed") or []
    for name, reason in failed:  # the report: always shown, also with --quiet
        print(escape_controls(f"backdrop: failed: {name}: {reason}"), file=sys.stderr)
    if failed or not args.quiet:
        print(escape_controls(f"backdrop: wrote {stats['images']} image(s) to {args.output}"
                              + (f"; {len(failed)} failed" if failed else "")), file=sys.stderr)
    return 1 if failed else 0
