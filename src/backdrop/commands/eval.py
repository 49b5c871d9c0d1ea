"""``backdrop eval IMAGES_OR_VIDEO [TRUTH]``: measure accuracy and stability against ground truth.

``backdrop eval --composite BACKGROUNDS IMAGES TRUTH``: the composite error, what the user sees
(people with a known soft alpha placed over person-free backgrounds; :mod:`backdrop.evaluate.composite`).

``backdrop eval --harmonize IMAGES TRUTH``: relighting measured as image harmonization is (the
person's light changed, the room kept, the photo the truth; :mod:`backdrop.evaluate.harmonize`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .common import add_pipeline_args, pipeline_options


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="measure accuracy (IoU, boundary F, MAD...) and stability (dtSSD, flicker)",
        description="Run the pipeline on labelled data and score its mattes. IMAGES_OR_VIDEO is a folder "
                    "of photos (TRUTH: a folder of masks or alpha mattes matched by file name), a single "
                    "image, a video, or a folder of numbered frames (TRUTH: a folder or video of per-frame "
                    "masks; without TRUTH only the flicker score is measured). With --composite BACKGROUNDS, "
                    "the people of IMAGES (alphas in TRUTH) are placed over the person-free photos in "
                    "BACKGROUNDS and the pipeline's composites over light #f0f0f0 and dark #101010 are "
                    "scored against the true ones (colour error /255, whole frame and edge band). Lower is "
                    "better for every metric except IoU and boundary F.")
    p.add_argument("input", metavar="IMAGES_OR_VIDEO", help="folder of images or frames, an image, or a video")
    p.add_argument("truth", metavar="TRUTH", nargs="?", default=None,
                   help="ground truth: folder of masks/alphas, a mask, or a video of masks (optional for video)")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--sequence", dest="mode", action="store_const", const="sequence",
                      help="treat a folder of images as consecutive video frames (adds dtSSD and flicker)")
    kind.add_argument("--images", dest="mode", action="store_const", const="images",
                      help="treat a folder as independent photos (default unless the names are frame numbers)")
    kind.add_argument("--harmonize", dest="mode", action="store_const", const="harmonize",
                      help="relighting as image harmonization: each person of IMAGES (alphas in TRUTH) with their "
                           "exposure, colour temperature, contrast or saturation changed, or darkened and noisy, over "
                           "their own room; fMSE and PSNR against the photo for no correction, the old colour match, "
                           "Reinhard transfer and --relight, on tuning and held-out photos")
    p.set_defaults(mode="auto")
    p.add_argument("--composite", default=None, metavar="BACKGROUNDS_DIR",
                   help="composite error: put each person of IMAGES (soft alphas in TRUTH) over one of these "
                        "person-free backgrounds (cycled in name order) and score the composites over light "
                        "and dark against the true ones")
    p.add_argument("--foreground", choices=["blur-fusion", "photo"], default=None,
                   help="with --composite: the person's true colours F, estimated from the photo and its alpha "
                        "with Blur-Fusion, or the photo as is (default blur-fusion)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON on stdout")
    p.add_argument("--worst", type=int, default=0, metavar="N",
                   help="write the N worst images as image | truth | prediction | error pictures "
                        "(--composite: input | true composite | our composite | error, over dark)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="folder for the --worst pictures and report.json (default for --worst: ./eval-worst)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N images or frames")
    p.add_argument("--band", type=float, default=3, metavar="PX",
                   help="boundary F tolerance in pixels (below 1: fraction of the diagonal; default 3)")
    add_pipeline_args(p, background=False, compose=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import OptionError, OutputError
    from ..evaluate import evaluate, format_report
    from ..io.atomic import make_folder, write_bytes

    if args.worst < 0:
        raise OptionError(f"--worst must be 0 or more, got {args.worst}")
    if args.limit is not None and args.limit < 1:
        raise OptionError(f"--limit must be 1 or more, got {args.limit}")
    if args.band < 0:
        raise OptionError(f"--band must be 0 or more, got {args.band}")
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out must be a folder: {out_dir}")
    if args.mode == "harmonize":
        from ..evaluate.harmonize import evaluate_harmonize, format_harmonize_report

        if args.composite is not None or args.foreground is not None or args.worst:
            raise OptionError("--harmonize goes without --composite, --foreground and --worst")
        if args.truth is None:
            raise OptionError("--harmonize needs the alphas: backdrop eval --harmonize IMAGES TRUTH")
        report = evaluate_harmonize(args.input, args.truth, limit=args.limit, quiet=args.quiet)
        render = format_harmonize_report
    elif args.composite is not None:
        from ..evaluate import evaluate_composite, format_composite_report

        if args.mode != "auto":
            raise OptionError("--composite scores independent photos: drop --sequence/--images")
        if args.truth is None:
            raise OptionError("--composite needs the alphas: backdrop eval --composite BACKGROUNDS IMAGES TRUTH")
        report = evaluate_composite(args.composite, args.input, args.truth,
                                    foreground=args.foreground or "blur-fusion", options=pipeline_options(args),
                                    worst=args.worst, out_dir=out_dir, limit=args.limit, band=args.band,
                                    quiet=args.quiet)
        render = format_composite_report
    else:
        if args.foreground is not None:
            raise OptionError("--foreground goes with --composite")
        report = evaluate(args.input, args.truth, mode=args.mode, options=pipeline_options(args),
                          worst=args.worst, out_dir=out_dir, limit=args.limit, band=args.band, quiet=args.quiet)
        render = format_report
    data = report.to_dict()
    if out_dir is not None:
        make_folder(out_dir)
        write_bytes(out_dir / "report.json", json.dumps(data, indent=1, allow_nan=False))
    if args.json:
        json.dump(data, sys.stdout, indent=1, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(render(report, band=args.band))
    return 0
