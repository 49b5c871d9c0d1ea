"""Hostile, unusual and broken image inputs through the real command line.

Cases run in batches inside one subprocess each (with a timeout, so a hang fails the test):
every unusual-but-valid image must work and come out at its displayed size; every broken one
must give a clear one-line error (exit 2, no traceback) and leave no output or temp file; no
input is ever modified. Outcomes are listed in docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import shared_path

TIMEOUT = 240

MANY = r"""
import contextlib, io, json, logging, sys, traceback
from backdrop.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    buf = io.StringIO()
    logging.root.handlers.clear()
    with contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:
            traceback.print_exc(file=buf)
            rc = -1
    # VmHWM: peak RSS of this address space (ru_maxrss would include the pytest parent's)
    hwm = [float(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")]
    results.append({"rc": rc, "stderr": buf.getvalue(), "maxrss_mb": hwm[0] if hwm else 0.0})
print(json.dumps(results))
"""


def run_many(cases: list[list[str]], env: dict | None = None) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", MANY, json.dumps(cases)], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def snapshot(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def assert_clean_error(res: dict, *fragments: str) -> str:
    assert "Traceback" not in res["stderr"], res["stderr"]
    assert res["rc"] == 2, res
    lines = [ln for ln in res["stderr"].splitlines() if ln.startswith("backdrop: error:")]
    assert len(lines) == 1, res["stderr"]
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h and carries one tiny IDAT: all a decoder sees before it
    allocates. Used for sizes far over the limit (it must be refused from the header)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def jpeg_declaring(w: int, h: int, photo: np.ndarray) -> bytes:
    """A real small JPEG whose frame header (SOF0) is patched to declare w x h."""
    buf = io.BytesIO()
    Image.fromarray(photo[:64, :64]).save(buf, format="JPEG", quality=80)
    b = bytearray(buf.getvalue())
    i = b.find(b"\xff\xc0")
    assert i > 0
    b[i + 5:i + 7] = struct.pack(">H", h)
    b[i + 7:i + 9] = struct.pack(">H", w)
    return bytes(b)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(shared_path("portraits-soft", "images", "WechatIMG253_2.png")).convert("RGB"))


@pytest.fixture(scope="module")
def variants(tmp_path_factory, photo) -> dict[str, tuple[Path, tuple[int, int]]]:
    """Unusual but valid images made from a real photo: name -> (file, displayed (w, h))."""
    d = tmp_path_factory.mktemp("hostile-image")
    im = Image.fromarray(photo)  # 512x512
    small = Image.fromarray(photo[:, 56:456])  # 400 wide, 512 tall: rotations show
    out: dict[str, tuple[Path, tuple[int, int]]] = {}

    def save(name: str, image: Image.Image, size=None, **kw):
        p = d / name
        image.save(p, **kw)
        out[name] = (p, size or image.size)

    save("grey.png", im.convert("L"))
    save("grey-alpha.png", im.convert("LA"))
    save("bilevel.png", im.convert("1"))
    save("cmyk.jpg", im.convert("CMYK"))
    save("cmyk.tif", im.convert("CMYK"))
    save("grey16.png", Image.fromarray(photo[..., 0].astype(np.uint16) * 257))
    save("rgba.png", Image.fromarray(np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)])))
    save("palette.png", im.convert("P", palette=Image.ADAPTIVE))
    pal = im.convert("P", palette=Image.ADAPTIVE)
    save("palette-transparent.png", pal, transparency=0)
    save("photo.webp", im)
    save("photo.bmp", im)
    save("one.png", Image.fromarray(photo[200:201, 200:201]))
    save("three-by-five.png", Image.fromarray(photo[200:205, 200:203]))
    save("big-4k.jpg", im.resize((4200, 2400)), quality=80)
    # 16-bit RGB (48-bit) PNG, written by hand: Pillow cannot write it
    h, w = photo.shape[:2]
    raw = b"".join(b"\x00" + (photo[y].astype(">u2") * 257).tobytes() for y in range(h))

    def chunk(t: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)
    (d / "rgb48.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                                  + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    out["rgb48.png"] = (d / "rgb48.png", (w, h))
    # EXIF orientations: the stored pixels are turned so that applying the tag shows `small`
    sw, sh = small.size
    for tag, stored in ((3, small.transpose(Image.Transpose.ROTATE_180)),
                        (6, small.transpose(Image.Transpose.ROTATE_90)),
                        (8, small.transpose(Image.Transpose.ROTATE_270))):
        ex = Image.Exif()
        ex[0x0112] = tag
        save(f"exif{tag}.jpg", stored, size=(sw, sh), exif=ex.tobytes(), quality=92)
    return out


def test_unusual_images_work_at_displayed_size(variants, tmp_path):
    names = sorted(variants)
    befores = {n: snapshot(variants[n][0]) for n in names}
    outs = {n: tmp_path / f"{n}.out.png" for n in names}
    cases = [["image", str(variants[n][0]), str(outs[n]), "-b", "#00b140", "-q"] for n in names]
    for n, res in zip(names, run_many(cases)):
        assert res["rc"] == 0, (n, res["stderr"])
        assert "Traceback" not in res["stderr"]
        with Image.open(outs[n]) as o:
            assert o.size == variants[n][1], (n, o.size, variants[n][1])
            assert o.mode == "RGB"
        assert snapshot(variants[n][0]) == befores[n], f"{n} was modified"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(o.name for o in outs.values())


def test_pixels_are_read_right(variants, photo):
    """Beyond 'it works': the converted pixels are the picture's."""
    from backdrop.io.image import read_image

    upright = photo[:, 56:456].astype(np.int16)
    for tag in (3, 6, 8):
        got = read_image(variants[f"exif{tag}.jpg"][0]).astype(np.int16)
        assert got.shape == upright.shape
        assert np.abs(got - upright).mean() < 4, f"EXIF {tag} not upright"
    grey16 = read_image(variants["grey16.png"][0])
    assert abs(grey16[..., 0].astype(int) - photo[..., 0].astype(int)).max() <= 1
    rgb48 = read_image(variants["rgb48.png"][0])
    assert abs(rgb48.astype(int) - photo.astype(int)).max() <= 1
    cmyk = read_image(variants["cmyk.tif"][0])
    assert np.abs(cmyk.astype(int) - photo.astype(int)).mean() < 3


def test_dark_16bit_image_stays_dark(tmp_path, photo):
    """A 16-bit image whose values are all under 256 is nearly black; it used to be scaled as
    if 8-bit (the scale came from the pixel values) and came out bright."""
    from backdrop.io.image import read_image

    p = tmp_path / "dark16.png"
    Image.fromarray(photo[..., 0].astype(np.uint16)).save(p)
    assert read_image(p).mean() < 2


def test_broken_images_give_one_line_errors(tmp_path, photo):
    rng = random.Random("broken-images")
    good_png = io.BytesIO()
    Image.fromarray(photo).save(good_png, format="PNG")
    good_jpg = io.BytesIO()
    Image.fromarray(photo).save(good_jpg, format="JPEG", quality=85)
    blobs = {
        "text.png": b"this is not an image\n" * 10,
        "empty.jpg": b"",
        "header-only.png": good_png.getvalue()[:40],
    }
    for k in range(3):
        data = good_png.getvalue()
        blobs[f"cut{k}.png"] = data[: rng.randrange(60, len(data) - 100)]
        data = good_jpg.getvalue()
        blobs[f"cut{k}.jpg"] = data[: rng.randrange(700, len(data) - 100)]
    names = sorted(blobs)
    cases, dirs = [], {}
    for n in names:
        p = tmp_path / n
        p.write_bytes(blobs[n])
        dirs[n] = tmp_path / f"out-{n}"
        dirs[n].mkdir()
        cases.append(["image", str(p), str(dirs[n] / "o.png"), "-q"])
    for n, res in zip(names, run_many(cases)):
        assert_clean_error(res, n)
        assert list(dirs[n].iterdir()) == [], n
        assert (tmp_path / n).read_bytes() == blobs[n]


def test_flipped_bytes_error_or_work(tmp_path, photo):
    rng = random.Random("flipped-images")
    seeds = {}
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        b = io.BytesIO()
        Image.fromarray(photo[:128, :128]).save(b, format=fmt)
        seeds[fmt.lower()] = b.getvalue()
    cases, files = [], []
    for k in range(12):
        fmt = ("png", "jpeg", "webp", "tiff")[k % 4]
        b = bytearray(seeds[fmt])
        for _ in range(rng.choice([1, 10, 100])):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        p = tmp_path / f"flip{k}.{fmt}"
        p.write_bytes(bytes(b))
        o = tmp_path / f"out{k}"
        o.mkdir()
        files.append((p, bytes(b), o))
        cases.append(["image", str(p), str(o / "o.png"), "-q"])
    for (p, data, o), res in zip(files, run_many(cases)):
        assert "Traceback" not in res["stderr"], res["stderr"]
        if res["rc"] == 0:
            with Image.open(o / "o.png") as im:
                assert im.size == (128, 128)
        else:
            assert_clean_error(res)
            assert list(o.iterdir()) == []
        assert p.read_bytes() == data


def test_decompression_bombs_refused_before_allocating(tmp_path, photo):
    files = {"bomb.png": png_header_only(30000, 30000), "bomb.jpg": jpeg_declaring(60000, 60000, photo)}
    cases = []
    for n, data in files.items():
        (tmp_path / n).write_bytes(data)
        cases.append(["image", str(tmp_path / n), str(tmp_path / f"{n}.out.png"), "-q"])
    results = run_many(cases)
    assert_clean_error(results[0], "30000x30000", "BACKDROP_MAX_PIXELS")
    assert_clean_error(results[1], "60000x60000", "BACKDROP_MAX_PIXELS")
    # 30000x30000 RGB would be 2.7 GB; the whole process stays near its idle size
    assert max(r["maxrss_mb"] for r in results) < 400
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)


def test_pixel_limit_env(tmp_path, photo):
    p = tmp_path / "photo.png"
    Image.fromarray(photo).save(p)  # 512x512 = 262144 pixels
    cases = [["image", str(p), str(tmp_path / "a.png"), "-q"]]
    assert_clean_error(run_many(cases, env={"BACKDROP_MAX_PIXELS": "200000"})[0], "512x512", "200000")
    assert run_many(cases, env={"BACKDROP_MAX_PIXELS": "300000"})[0]["rc"] == 0
    assert_clean_error(run_many([["image", str(p), str(tmp_path / "b.png"), "-q"]],
                                env={"BACKDROP_MAX_PIXELS": "-5"})[0], "BACKDROP_MAX_PIXELS")
    assert not (tmp_path / "b.png").exists()


def test_non_ascii_paths_and_folder_mode(tmp_path, photo):
    src = tmp_path / "фото с пробелами ü"
    src.mkdir()
    Image.fromarray(photo).save(src / "portrait été 1.jpg")
    Image.fromarray(photo[:300]).save(src / "日本 2.png")
    out = tmp_path / "sortie ü"
    res = run_many([["image", str(src), str(out), "-b", "transparent", "-q"]])[0]
    assert res["rc"] == 0, res["stderr"]
    # a transparent result from a JPEG is written as PNG
    assert sorted(p.name for p in out.iterdir()) == ["portrait été 1.png", "日本 2.png"]
    with Image.open(out / "portrait été 1.png") as im:
        assert im.mode == "RGBA" and im.size == (512, 512)




def test_disk_full_image(tmp_path, photo, small_disk):
    p = tmp_path / "photo.png"
    Image.fromarray(photo).resize((1024, 1024)).save(p)  # its PNG output is about 1 MB
    st = os.statvfs(small_disk)
    with contextlib.suppress(OSError):
        (small_disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 60_000))
    res = run_many([["image", str(p), str(small_disk / "out.png"), "-b", "#00b140", "-q"]])[0]
    assert_clean_error(res, "no space left on the device", "out.png")
    assert sorted(x.name for x in small_disk.iterdir()) == ["filler"]
