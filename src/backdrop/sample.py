"""The bundled sample: a short clip and a background, made by the project itself.

The clip animates the astronaut photo that scikit-image ships (NASA, public domain: Eileen
Collins) with a slow pan and zoom, and carries a generated audio tone so audio keeping can be
seen. The background is generated (a soft gradient with out-of-focus discs). Nothing is copied
from anywhere; the files are written atomically.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from .io.atomic import atomic_output
from .io.image import write_image


def make_background(width: int = 1280, height: int = 720, seed: int = 7) -> np.ndarray:
    """A calm generated backdrop: vertical dusk gradient plus blurred light discs."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([38, 52, 110], np.float32), np.array([235, 150, 90], np.float32)
    img = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).copy()
    discs = np.zeros_like(img)
    for _ in range(40):
        c = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        r = int(rng.integers(height // 40, height // 10))
        colour = rng.uniform(120, 255, 3).tolist()
        cv2.circle(discs, c, r, colour, -1, lineType=cv2.LINE_AA)
    discs = cv2.GaussianBlur(discs, (0, 0), height / 90)
    img = np.clip(img + 0.35 * discs, 0, 255)
    return img.astype(np.uint8)


def sample_frames(n: int = 90, width: int = 640, height: int = 480):
    """Yield ``n`` RGB frames of a slow pan/zoom over the astronaut photo."""
    from skimage import data

    src = data.astronaut()  # 512x512 RGB uint8
    big = cv2.resize(src, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    aspect = width / height
    for i in range(n):
        s = i / max(1, n - 1)
        ease = 0.5 - 0.5 * np.cos(np.pi * s)
        crop_w = 1024 * (1.0 - 0.18 * ease)
        crop_h = crop_w / aspect
        cx = 512 - 60 + 120 * ease
        cy = crop_h / 2 + 40 * ease
        m = np.float32([[width / crop_w, 0, -(cx - crop_w / 2) * width / crop_w],
                        [0, height / crop_h, -(cy - crop_h / 2) * height / crop_h]])
        yield cv2.warpAffine(big, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def write_sample_video(path: Path, n: int = 90, fps: int = 30, width: int = 640, height: int = 480) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as out:
            vs = out.add_stream("libx264", rate=fps)
            vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
            vs.options = {"crf": "18", "preset": "veryfast"}
            aud = out.add_stream("aac", rate=48000)
            aud.layout = "mono"
            sr, spf = 48000, 1024
            total = int(sr * n / fps)
            t = np.arange(total) / sr
            tone = (0.2 * np.sin(2 * np.pi * 220 * t) * np.minimum(1, np.minimum(t, t[-1] - t) * 4))
            tone = tone.astype(np.float32)
            a_pos = 0
            for i, img in enumerate(sample_frames(n, width, height)):
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts = i
                vf.time_base = Fraction(1, fps)
                out.mux(vs.encode(vf))
                while a_pos < total and a_pos / sr <= (i + 1) / fps:
                    chunk = tone[a_pos:a_pos + spf]
                    af = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
                    af.sample_rate = sr
                    af.pts = a_pos
                    af.time_base = Fraction(1, sr)
                    out.mux(aud.encode(af))
                    a_pos += spf
            out.mux(vs.encode(None))
            out.mux(aud.encode(None))
    return path


def write_sample(folder: Path) -> tuple[Path, Path]:
    """Write ``astronaut.mp4`` and ``background.jpg`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    video = write_sample_video(folder / "astronaut.mp4")
    bg = folder / "background.jpg"
    write_image(bg, make_background())
    return video, bg
