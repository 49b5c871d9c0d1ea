"""Issue 21's modes on footage we did not make: clean plate shot apart, ghost trail, green screen
with a fold and a shadow. Tuning and held-out sets apart (docs/quality.md, "Modes on footage we did
not make"); alpha MAD x1e3 against the raw network (plate, trail) or the default (key).

    python benchmarks/modes_shot_apart.py                        # every section, JSON on stdout
    python benchmarks/modes_shot_apart.py --sections plate2,trail2    # the fresh held-out clips

"before" numbers in the docs come from main's ``src`` with this branch's ``evaluate/synthetic.py``
copied over it (``--tree DIR``: import ``DIR/src`` instead of this checkout). About 12 minutes on
2 busy cores. The held-out remove.bg set is every 4th portrait-like remove.bg photo at least 480
wide (12 photos), chosen by ``index.csv``, not by looking.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--tree", default=str(REPO), help="a checkout whose src/ is measured (default: this one)")
parser.add_argument("--sections", default="plate,plate2,trail,trail2,key")
args = parser.parse_args()
sys.path.insert(0, str(Path(args.tree) / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from backdrop import Pipeline, PipelineOptions, load_model  # noqa: E402
from backdrop.evaluate.synthetic import green_screen_set, sliding_clip  # noqa: E402

S = os.environ.get("BACKDROP_SHARED_DATA", str(REPO.parent / "shared" / "data"))
SOFT = (f"{S}/portraits-soft/images", f"{S}/portraits-soft/masks")
RGBA = (f"{S}/people-rgba", f"{S}/people-rgba")
WORK = Path(tempfile.mkdtemp(prefix="backdrop-modes-"))


def removebg_subset() -> tuple[str, str]:
    """Every 4th portrait-like remove.bg photo at least 480 wide, linked into a folder pair."""
    root = Path(S) / "portraits-removebg"
    rows = [r for r in csv.DictReader(open(root / "index.csv", newline=""))
            if r["portrait_like"].strip() == "1" and int(r["img_w"]) >= 480][::4][:12]
    for kind in ("images", "masks"):
        (WORK / kind).mkdir(exist_ok=True)
    for r in rows:
        for kind in ("image", "mask"):
            src = root / r[kind]
            (WORK / f"{kind}s" / src.name).symlink_to(src)
    return str(WORK / "images"), str(WORK / "masks")


def clip_mad(pipe, clip) -> float:
    mattes = [m for _, m, _ in pipe.stream(clip.frames)]
    return 1e3 * float(np.mean([np.abs(m - t).mean() for m, t in zip(mattes, clip.alphas)]))


PLATE = {
  "tune": {"t-exp2": (SOFT, "backgrounds", dict(seed=0, plate_gain=1.02, plate_noise=2.0, noise=2.0)),
           "t-exp4": (SOFT, "backgrounds", dict(seed=1, plate_gain=0.96, plate_noise=1.0, noise=1.0)),
           "t-wb": (SOFT, "backgrounds", dict(seed=2, plate_gain=(1.03, 1.0, 0.97), plate_noise=1.5, noise=1.5)),
           "t-clean": (SOFT, "backgrounds", dict(seed=0))},
  "held": {"h-own-exp2": (SOFT, "backgrounds-extra", dict(person="own-2553537_1280", seed=21, plate_gain=1.02, plate_noise=2.0, noise=2.0)),
           "h-old-small": (RGBA, "backgrounds-extra", dict(person="example03", seed=22, scale=0.6, plate_gain=0.97, plate_noise=3.0, noise=3.0)),
           "h-group-wb": (RGBA, "backgrounds-extra", dict(person="example01", seed=23, scale=0.7, plate_gain=(1.02, 1.0, 0.96), plate_noise=2.0, noise=1.5)),
           "h-arms-exp": (RGBA, "backgrounds-extra", dict(person="example02", seed=24, scale=0.8, plate_gain=1.04, plate_noise=1.0, noise=1.0))},
}
TRAIL = {
  "tune": {f"seed{s}": (SOFT, "backgrounds", dict(seed=s, frames=60)) for s in range(4)},
  "held": {"x-bw": (SOFT, "backgrounds-extra", dict(person="portrait-laughing-businesswoman-long-dark-450w-235195312", seed=5, across=True, frames=60)),
           "x-own": (SOFT, "backgrounds-extra", dict(person="own-2553537_1280", seed=6, across=True, scale=0.7, frames=60)),
           "x-old": (RGBA, "backgrounds-extra", dict(person="example03", seed=7, across=True, scale=0.5, frames=60))},
}
PLATE2 = {  # fresh held-out plates (made in session 2, never looked at before these numbers)
  "tune": {},
  "held": {"z-soft-dark": (SOFT, "backgrounds-extra", dict(seed=41, plate_gain=0.97, plate_noise=3.0, noise=2.5)),
           "z-rgba-bright": (RGBA, "backgrounds-extra", dict(person="example02", seed=42, scale=0.7, plate_gain=1.05, plate_noise=2.0, noise=2.0)),
           "z-soft-warm": (SOFT, "backgrounds-extra", dict(seed=43, scale=0.8, plate_gain=(1.0, 0.98, 0.94), plate_noise=4.0, noise=3.0)),
           "z-soft-exp2": (SOFT, "backgrounds-extra", dict(seed=44, plate_gain=1.02, plate_noise=2.0, noise=2.0))},
}
TRAIL2 = {  # fresh held-out clips (made in session 2, never looked at before these numbers)
  "tune": {},
  "held": {"y-rgba-arms": (RGBA, "backgrounds-extra", dict(person="example02", seed=31, across=True, scale=0.6, frames=60)),
           "y-soft-a": (SOFT, "backgrounds-extra", dict(seed=32, across=True, scale=0.8, frames=60)),
           "y-rgba-group": (RGBA, "backgrounds-extra", dict(person="example01", seed=33, across=True, scale=0.5, frames=60, noise=2.0)),
           "y-soft-b": (SOFT, "backgrounds-extra", dict(seed=34, frames=60, noise=2.5))},
}
KEY = {
  "tune": {"k-fold-shadow": (SOFT, dict(seed=0, fold=0.3, shadow=0.4, spill_edge=0.15, limit=20)),
           "k-fold-uneven": (SOFT, dict(seed=1, fold=0.4, spill_edge=0.15, lighting=1.5, limit=20))},
  "held": {"kh-rgba-fold": (RGBA, dict(seed=5, fold=0.5, shadow=0.3, lighting=1.3, spill_edge=0.2)),
           "kh-rgba-tint": (RGBA, dict(seed=6, fold=0.25, shadow=0.5, screen=(60, 170, 80), noise=3.0)),
           "kh-removebg": ("removebg", dict(seed=7, fold=0.45, shadow=0.35, lighting=1.6, spill_edge=0.25))},
}
def main() -> None:
    seg = load_model("selfie", quiet=True)
    out = {"tree": args.tree, "load_before": open("/proc/loadavg").read().split()[:3]}
    sections = {"plate": PLATE, "plate2": PLATE2, "trail": TRAIL, "trail2": TRAIL2, "key": KEY}
    for section in args.sections.split(","):
        for part in ("tune", "held"):
            for name, spec in sections[section][part].items():
                t = time.time()
                if section == "key":
                    folders, kw = spec
                    gs = green_screen_set(*(removebg_subset() if folders == "removebg" else folders), **kw)

                    def mad(**o):
                        return float(np.mean([1e3 * np.abs(Pipeline(background="matte", segmenter=seg, **o)
                                                            .matte(it.image) - it.alpha).mean() for it in gs.items]))
                    r = {"network": mad(), "key": mad(key="green")}
                else:
                    folders, bg, kw = spec
                    kw = dict(kw)
                    clip = sliding_clip(*folders, f"{S}/{bg}", frames=kw.pop("frames", 40), **kw)
                    r = {"raw": clip_mad(Pipeline(background="matte", segmenter=seg,
                                                  options=PipelineOptions.raw()), clip)}
                    if section.startswith("trail"):
                        r["default"] = clip_mad(Pipeline(background="matte", segmenter=seg), clip)
                    else:
                        plate = str(WORK / "plate.png")
                        cv2.imwrite(plate, cv2.cvtColor(clip.user_plate, cv2.COLOR_RGB2BGR))
                        r["plate"] = clip_mad(Pipeline(background="matte", segmenter=seg, plate=plate), clip)
                out[f"{section}/{part}/{name}"] = r
                print(section, part, name, {k: round(v, 2) for k, v in r.items()}, f"{time.time() - t:.0f}s",
                      file=sys.stderr, flush=True)
    out["load_after"] = open("/proc/loadavg").read().split()[:3]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
