"""``backdrop sample [DIR]``: write the bundled sample clip and background."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("sample", help="write the sample clip (astronaut.mp4) and background.jpg")
    p.add_argument("folder", nargs="?", default="samples", help="where to write them (default: samples)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sample import write_sample

    video, bg = write_sample(args.folder)
    print(f"backdrop: wrote {video} and {bg}", file=sys.stderr)
    return 0
