"""``backdrop train {fit,export,adapt,label,info,sr}``: train, export and adapt our own students.

Thin wrappers over :mod:`backdrop.train`; nothing here imports torch until a sub-command runs,
so ``backdrop --help`` works without the ``[train]`` extra (a sub-command that needs torch says
which extra to install, in one line).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("train", help="train, export and adapt your own segmentation model; train the upscaler",
                       description="Train a MobileNetV2 U-Net student on labelled people (synthesised onto "
                                   "backgrounds, distilled from a teacher), export it to ONNX, or adapt it "
                                   "to your own scene. Needs the [train] extra. See docs/training.md.")
    tsub = p.add_subparsers(dest="train_command", metavar="STEP")
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])

    f = tsub.add_parser("fit", help="train from a config file (TOML or YAML)")
    f.add_argument("config", help="training config, e.g. configs/portrait-w050.toml")
    f.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set optim.epochs=3")
    f.add_argument("--out", help="run folder (overrides run.out)")
    f.add_argument("--resume", action="store_true", help="continue the run in run.out from last.pt")
    f.add_argument("--init", metavar="CKPT", help="start from this checkpoint's weights (fine-tuning)")
    f.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-epoch lines")
    f.set_defaults(func=run_fit)

    e = tsub.add_parser("export", help="write a checkpoint as ONNX with its spec in the metadata")
    e.add_argument("checkpoint", help="best.pt or last.pt from a run folder")
    e.add_argument("output", help="output .onnx file")
    e.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    e.add_argument("--name", help="model name recorded in the spec")
    e.add_argument("--check", nargs="*", metavar="IMAGE_OR_DIR",
                   help="images to compare PyTorch and ONNX Runtime outputs on (parity)")
    e.set_defaults(func=run_export)

    a = tsub.add_parser("adapt", help="fine-tune a student on unlabelled video of your own scene")
    a.add_argument("--frames", required=True, metavar="DIR_OR_VIDEO", help="frames folder or video of the scene")
    a.add_argument("--out", required=True, help="output folder (checkpoint, model.onnx, adapt.json)")
    a.add_argument("--checkpoint", metavar="CKPT", help="student to start from (default: from scratch)")
    a.add_argument("--teacher", default="selfie", help="teacher model: selfie or a .onnx/.tflite file")
    a.add_argument("--every", type=int, default=10, help="use one frame in N (default 10)")
    a.add_argument("--max-frames", type=int, default=120, help="at most this many frames (default 120)")
    a.add_argument("--holdout", type=float, default=0.25, help="last fraction of frames held out (default 0.25)")
    a.add_argument("--min-agreement", type=float, default=0.9,
                   help="drop frames where the teacher's flip/zoom runs agree less (IoU, default 0.9)")
    a.add_argument("--config", help="TOML/YAML whose sections override the adaptation defaults")
    a.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one value, e.g. --set optim.epochs=10")
    a.add_argument("--quiet", "-q", action="store_true")
    a.set_defaults(func=run_adapt)

    lb = tsub.add_parser("label", help="label unlabelled frames with a teacher (consistency-filtered)")
    lb.add_argument("--frames", required=True, metavar="DIR_OR_VIDEO")
    lb.add_argument("--out", required=True, help="output pairs folder (images/, masks/, index.csv)")
    lb.add_argument("--teacher", default="selfie", help="selfie or a .onnx/.tflite file")
    lb.add_argument("--every", type=int, default=10, help="use one frame in N (default 10)")
    lb.add_argument("--max-frames", type=int, default=0, help="at most this many frames (0 = all)")
    lb.add_argument("--min-agreement", type=float, default=0.9, help="flip/zoom IoU to keep a frame")
    lb.add_argument("--min-person", type=float, default=0.0, help="drop frames with less person than this fraction")
    lb.add_argument("--quiet", "-q", action="store_true")
    lb.set_defaults(func=run_label)

    s = tsub.add_parser("sr", help="train the x2 super-resolution network (backdrop upscale, the page's upscale x2)")
    s.add_argument("config", help="training config, e.g. configs/sr-x2.toml (the shipped weights' own)")
    s.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set optim.steps=200")
    s.add_argument("--out", help="run folder (overrides run.out)")
    s.add_argument("--resume", action="store_true", help="continue the run in run.out from last.pt")
    s.add_argument("--quiet", "-q", action="store_true", help="no per-validation lines")
    s.set_defaults(func=run_sr)

    i = tsub.add_parser("info", help="model size (parameters, FLOPs), data splits, held-out scores")
    i.add_argument("config", nargs="?", help="training config (default: built-in defaults)")
    i.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    i.add_argument("--width", type=float, help="model width multiplier (overrides model.width)")
    i.add_argument("--checkpoint", metavar="CKPT", help="with --evaluate: the student to score")
    i.add_argument("--evaluate", action="store_true",
                   help="score --checkpoint and the teacher on the config's eval split (never trained on)")
    i.add_argument("--on", action="append", metavar="DIR",
                   help="with --evaluate: score all pairs of this folder instead (repeatable)")
    i.set_defaults(func=run_info)


def _load_cfg(args, extra: list[str] | None = None):
    from ..train.config import load_config

    return load_config(getattr(args, "config", None), list(getattr(args, "set", []) or []) + (extra or []))


def run_fit(args) -> int:
    from ..train import require_torch

    require_torch()
    from ..train.loop import fit

    cfg = _load_cfg(args, [f"run.out={json.dumps(args.out)}"] if args.out else None)
    result = fit(cfg, resume=args.resume, quiet=args.quiet, init_from=args.init)
    summary = {"epochs": result["epochs"], "steps": result["steps"], "best_val_iou": round(result["best_val_iou"], 4),
               "checkpoint": result["checkpoint"], "onnx": result.get("onnx")}
    if "eval" in result:
        ev = result["eval"]
        summary["eval"] = {"images": ev["eval_images"], "student_iou": round(ev["student"]["iou"], 4),
                           "teacher_iou": round(ev["teacher"]["iou"], 4) if "teacher" in ev else None}
    print(json.dumps(summary, indent=2))
    return 0


def _images(paths: list[str]):
    from ..io.image import IMAGE_SUFFIXES, read_image

    out = []
    for p in map(Path, paths):
        files = sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)[:8] if p.is_dir() else [p]
        out += [read_image(q) for q in files]
    return out


def run_export(args) -> int:
    from ..train import require_torch

    require_torch()
    from ..train.export import export_checkpoint, parity
    from ..train.predict import load_student

    path = export_checkpoint(args.checkpoint, args.output, opset=args.opset, name=args.name)
    print(f"backdrop: wrote {path}", file=sys.stderr)
    if args.check:
        model, _, _ = load_student(args.checkpoint)
        r = parity(model, path, _images(args.check))
        print(f"backdrop: parity on {r['images']} images: max abs diff {r['max_abs_diff']:.2e}, "
              f"batch output {r['batch_shape']}", file=sys.stderr)
    return 0


def run_adapt(args) -> int:
    from ..train import require_torch

    require_torch()
    from ..train.adapt import adapt
    from ..train.config import read_config_dict

    _check_frame_options(args)
    cfg = read_config_dict(args.config) if args.config else None
    result = adapt(args.frames, args.out, checkpoint=args.checkpoint, teacher=args.teacher, every=args.every,
                   max_frames=args.max_frames, holdout=args.holdout, min_agreement=args.min_agreement,
                   config=cfg, overrides=args.set, quiet=args.quiet)
    print(json.dumps(result, indent=2))
    return 0


def _check_frame_options(args) -> None:
    """The label/adapt flags, checked as every other command checks its flags: one line, exit 2,
    before a teacher loads (``--every 0`` and a NaN ``--min-agreement`` were accepted)."""
    import math

    from ..errors import OptionError
    from ..train.checks import check_teacher

    if args.every < 1:
        raise OptionError(f"--every must be 1 or more, got {args.every}")
    if args.max_frames < 0:
        raise OptionError(f"--max-frames must be 0 or more, got {args.max_frames}")
    for flag in ("min_agreement", "min_person", "holdout"):
        value = getattr(args, flag, None)
        if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise OptionError(f"--{flag.replace('_', '-')} must be between 0 and 1, got {value}")
    check_teacher(args.teacher, "--teacher")


def run_label(args) -> int:
    from ..train.data import iter_frames
    from ..train.teacher import label_frames, load_teacher

    _check_frame_options(args)
    teacher = load_teacher(args.teacher)
    r = label_frames(teacher, iter_frames(args.frames, every=args.every, limit=args.max_frames or None),
                     args.out, min_agreement=args.min_agreement, min_person=args.min_person, quiet=args.quiet)
    print(f"backdrop: labelled {r['kept']} frames into {r['out']} (dropped {r['dropped']})", file=sys.stderr)
    return 0


def run_sr(args) -> int:
    from ..train import require_torch

    require_torch()
    from ..train.sr_config import load_sr_config
    from ..train.sr_loop import fit_sr

    cfg = load_sr_config(args.config, list(args.set) + ([f"run.out={json.dumps(args.out)}"] if args.out else []))
    print(json.dumps(fit_sr(cfg, resume=args.resume, quiet=args.quiet), indent=2))
    return 0


def run_info(args) -> int:
    from ..train import require_torch

    require_torch()
    from ..train.data import SPLITS, find_pairs, select
    from ..train.model import build_model, count_flops, count_params

    extra = [f"model.width={args.width}"] if args.width is not None else []
    cfg = _load_cfg(args, extra)
    mc, d = cfg.model, cfg.data
    model = build_model(mc.width, parsing_head=mc.parsing_head)
    info = {"model": {"width": mc.width, "input": [mc.input_height, mc.input_width],
                      "params": count_params(model), "params_with_parsing_head": count_params(model, matte_only=False),
                      "gflops": round(count_flops(model, mc.input_height, mc.input_width) / 1e9, 4)}}
    splits = {}
    for folder in d.train:
        pairs = find_pairs(folder)
        splits[folder] = {s: len(select(pairs, s, d.eval_fraction, d.val_fraction, d.split_salt)) for s in SPLITS}
    if splits:
        info["splits"] = splits
    if args.evaluate:
        if not args.checkpoint:
            from ..train import TrainError

            raise TrainError("--evaluate needs --checkpoint")
        from ..train.evaluate import report_eval

        r = report_eval(cfg, args.checkpoint, folders=args.on)
        info["eval"] = {"images": r["eval_images"], "student": {k: r["student"][k] for k in ("iou", "boundary_f")}}
        if "teacher" in r:
            info["eval"]["teacher"] = {k: r["teacher"][k] for k in ("model", "iou", "boundary_f")}
    print(json.dumps(info, indent=2))
    return 0
