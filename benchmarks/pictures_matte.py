"""Pictures for docs/quality.md: the same frames raw / before / now (/ RVM, / key), over a light and
a dark new background, with crops of hair and shoulders, so glows and fringes can be seen.

    python benchmarks/pictures_matte.py            # writes docs/img/matte-*.png

"before" is the default pipeline of the previous landing as far as single frames go: the same
stages without despill (temporal changes do not act on a single frame).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from backdrop import Pipeline, PipelineOptions  # noqa: E402
from backdrop.evaluate.composite import composite_cases  # noqa: E402
from backdrop.io.video import VideoReader  # noqa: E402

LIGHT, DARK = (240, 240, 240), (16, 16, 16)


def shared() -> Path:
    return Path(os.environ.get("BACKDROP_SHARED_DATA", REPO.parent / "shared" / "data"))


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def composites(frames: list[np.ndarray], configs: dict[str, PipelineOptions]) -> dict[str, list[np.ndarray]]:
    """The last frame of ``frames`` through each config, over light and dark (a clip warms up)."""
    out = {}
    for name, opts in configs.items():
        row = []
        for colour in (LIGHT, DARK):
            pipe = Pipeline(background=colour, options=opts)
            row.append([o for _, _, o in pipe.stream(frames)][-1])
            pipe.close()
        out[name] = row
    return out


def sheet(frames, configs, crop, path: Path, scale: int = 2) -> None:
    """Rows: configs; columns: light, dark, and the two crops (x0, y0, w, h) enlarged."""
    x0, y0, w, h = crop
    rows = []
    for name, (light, dark) in composites(frames, configs).items():
        zoom = [cv2.resize(img[y0:y0 + h, x0:x0 + w], (w * scale, h * scale), interpolation=cv2.INTER_NEAREST)
                for img in (light, dark)]
        height = zoom[0].shape[0]
        full = [cv2.resize(img, (round(img.shape[1] * height / img.shape[0]), height)) for img in (light, dark)]
        rows.append(label(np.hstack(full + zoom), f"{name}: light | dark | crops x{scale}"))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR))
    print("wrote", path)


def main() -> int:
    root = shared()
    out = REPO / "docs" / "img"
    q = dict(quiet=True)
    configs = {"raw": PipelineOptions.raw(**q), "before": PipelineOptions(despill=0.0, **q),
               "now": PipelineOptions(**q), "rvm": PipelineOptions.for_model("rvm", **q)}
    cases = list(composite_cases(root / "backgrounds", root / "portraits-soft" / "images",
                                 root / "portraits-soft" / "masks"))
    case = next((c for c in cases if "girl-2099357" in c.name), cases[0])  # a wall close to her hair colour
    sheet([case.image], configs, (300, 40, 180, 120), out / "matte-girl-2099357.png")
    from backdrop.io.image import read_image

    braids = read_image(root / "portraits-removebg" / "images" / "86.jpg")  # braids and a bun
    h, w = braids.shape[:2]
    sheet([braids], configs, (w // 4, 0, w // 2, h // 3), out / "matte-86.png", scale=1)
    reader = VideoReader(root / "clips" / "greenscreen-512.mp4")
    frames = [f.image for _, f in zip(range(24), reader)]
    reader.close()
    screen = {"raw": configs["raw"], "before": configs["before"], "now": configs["now"],
              "now --key green": PipelineOptions(key="green", **q), "rvm": configs["rvm"]}
    sheet(frames, screen, (110, 40, 320, 160), out / "matte-greenscreen.png", scale=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
