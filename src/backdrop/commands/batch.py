"""``backdrop batch INPUTS OUT_DIR``: many videos and images on Ray, resumable."""

from __future__ import annotations

import sys

from .common import add_pipeline_args, pipeline_options


def register(sub) -> None:
    p = sub.add_parser(
        "batch", help="process a folder or glob of videos/images on Ray (local or a cluster), resumable",
        description="Replace the background of every video and image in a folder (or matching a quoted "
                    "glob, '**' for subfolders) into OUT_DIR, one Ray task per file, long videos in "
                    "keyframe chunks stitched back losslessly. A manifest in OUT_DIR makes reruns skip "
                    "finished work; outputs appear only complete. Exit status 1 if any file failed.")
    p.add_argument("inputs", metavar="INPUT_DIR_OR_GLOB", help="a folder, a file, or a quoted glob")
    p.add_argument("output", metavar="OUT_DIR", help="output folder (created if missing)")
    add_pipeline_args(p)
    p.add_argument("--address", default=None, metavar="ADDR",
                   help="existing Ray cluster: HOST:PORT (driver on a cluster node) or ray://HOST:PORT "
                        "(Ray Client); default: a private local Ray instance")
    p.add_argument("--num-cpus", type=int, default=2, metavar="N",
                   help="CPUs of the local Ray instance (default 2; ignored with --address)")
    p.add_argument("--cpus-per-task", type=int, default=1, metavar="N",
                   help="CPUs each file/chunk task reserves, and its inference threads (default 1; a task must fit "
                        "on one node: more than --num-cpus or the largest cluster node is refused)")
    p.add_argument("--chunk-seconds", type=float, default=60.0, metavar="S",
                   help="split videos longer than 1.5*S at keyframes about every S seconds (0: never; default 60)")
    p.add_argument("--warmup", type=int, default=60, metavar="N",
                   help="frames run before each chunk (output discarded) so its seam is invisible (default 60)")
    p.add_argument("--retries", type=int, default=2, metavar="N",
                   help="times a task is retried when its worker dies (default 2)")
    p.add_argument("--crf", type=int, default=20, help="H.264 quality, 0-51, lower is better (default 20)")
    p.add_argument("--preset", default="veryfast", help="x264 preset (default veryfast)")
    p.add_argument("--no-audio", action="store_true", help="drop the audio")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cluster.driver import run_batch

    report = run_batch(args.inputs, args.output, background=args.background, options=pipeline_options(args),
                       crf=args.crf, preset=args.preset, keep_audio=not args.no_audio, address=args.address,
                       num_cpus=args.num_cpus, cpus_per_task=args.cpus_per_task, chunk_seconds=args.chunk_seconds,
                       warmup=args.warmup, retries=args.retries, quiet=args.quiet)
    print(report.table())
    sys.stdout.flush()
    return 0 if report.ok else 1
