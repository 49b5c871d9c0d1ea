"""Pictures for docs/quality.md "Relight": a person from a dark room over a bright lake, and a
person lit by tungsten over a cool office, before (pasted as shot) and after (--relight 1; for the
office also the white-balance look the stage had before tuning, which is not shipped).

    python benchmarks/pictures_relight.py            # writes docs/img/relight-*.png

The person is a real RGBA cut-out with its own soft alpha (people-rgba/example03.png,
canvascomputing/human-segmentation, Apache-2.0); the rooms are made from it as a camera would
see them (2 stops under with 3 levels of sensor noise; a 3500 K lamp on a camera balanced for
daylight). The backgrounds are Unsplash photos (workadventure's credits: paysage_2 by Peter Mc
Greats, office_2 by The Van Egmond; Unsplash Licence). The composite is ``Pipeline.composite``
with the true alpha, so only the relight stage differs between the two halves.
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
from backdrop.compose.backgrounds import cover_resize  # noqa: E402
from backdrop.compose.relight import to_linear, to_srgb  # noqa: E402
from backdrop.compose.relight_estimate import RelightConstants, relight_once  # noqa: E402
from backdrop.evaluate.perturb import perturb_person, temperature_gains  # noqa: E402
from backdrop.io.image import read_image, write_image  # noqa: E402

WIDTH = 480  # each half


def shared() -> Path:
    return Path(os.environ.get("BACKDROP_SHARED_DATA", REPO.parent / "shared" / "data"))


def person() -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    rgba = np.asarray(Image.open(shared() / "people-rgba" / "example03.png").convert("RGBA"))
    h, w = rgba.shape[:2]
    size = (WIDTH, round(h * WIDTH / w))
    rgba = cv2.resize(rgba, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgba[..., :3]), rgba[..., 3].astype(np.float32) / 255


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 22), (0, 0, 0), -1)
    cv2.putText(out, text, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def pair(frame: np.ndarray, alpha: np.ndarray, background: np.ndarray, what: str, look: bool) -> np.ndarray:
    """Pasted as shot | the default (``--relight 1``) | with ``look``: the white-balance look of
    before tuning (gain_warm 0.5, gain_green 0.3; the shipped gains are 0, docs/quality.md)."""
    h, w = alpha.shape
    bg = cover_resize(background, w, h)
    outs = []
    for strength in (0.0, 1.0):
        pipe = Pipeline(background=bg, options=PipelineOptions.raw(relight=strength, quiet=True))
        outs.append(pipe.composite(frame, alpha, index=0))
        pipe.close()
    panels = [label(outs[0], f"{what}: pasted as shot"), label(outs[1], "--relight 1 (the default)")]
    if look:
        fg = relight_once(frame, alpha, bg, RelightConstants(gain_warm=0.5, gain_green=0.3))
        a = alpha[..., None]
        mixed = np.clip(a * fg.astype(np.float32) + (1 - a) * bg + 0.5, 0, 255).astype(np.uint8)
        panels.append(label(mixed, "white-balance look (not shipped)"))
    return np.hstack(panels)


def main() -> int:
    rgb, alpha = person()
    beach = read_image(shared() / "backgrounds-extra" / "unsplash-paysage_2.jpg")
    office = read_image(shared() / "backgrounds-extra" / "unsplash-office_2.jpg")
    dark = perturb_person(rgb, "lowlight", -2.0, np.random.default_rng(0), noise=3.0)
    warm = to_srgb(to_linear(rgb) * temperature_gains(-3000))
    out = REPO / "docs" / "img"
    for name, frame, bg, what, look in (("dark-room-over-lake", dark, beach, "dark, noisy room", False),
                                        ("warm-room-over-office", warm, office, "3500 K lamp", True)):
        path = out / f"relight-{name}.png"
        write_image(path, pair(frame, alpha, bg, what, look))
        print(f"wrote {path} ({path.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
