"""x2 super-resolution against the classical anchors, side by side in one run (issue 22).

    python benchmarks/upscale.py                 # quality + Python speed + the page (~5 minutes)
    python benchmarks/upscale.py --no-page       # without Chromium
    python benchmarks/upscale.py --no-doc --json-out /tmp/upscale.json

* **quality** (:func:`backdrop.superres.anchors.quality`): the held-out clip
  (``clips/talking-portrait-720x1280.mp4``, never read by ``backdrop train sr``), its first
  ``--frames`` frames shrunk to 360x640 with the area filter and sent through H.264 and VP8 at
  500 kbit/s (libwebrtc's target for a 640x360 layer), decoded, upscaled back by bilinear,
  bicubic, Lanczos, FSR 1 (EASU, and EASU + RCAS) and ours; Y-PSNR and SSIM (on Y) against the
  original frames, every 4th frame after the key frame.
* **Python speed** (:func:`backdrop.superres.anchors.speed`): ms per 640x360 -> 1280x720 frame,
  min and median of 30, for each anchor on Y and for ours through the RGB API, the I420 path and
  each backend (ONNX Runtime, OpenCV dnn, the NumPy reference), with the load average.
* **page**: headless Chromium, software WebGL (SwiftShader), the page's own ``gl-upscale.js`` on a
  640x360 frame for ``--page-frames`` frames, one per animation frame; the pass time the page's
  ``stats()`` reports (a GPU timer query where the browser has one, else fences).

Writes the ``upscale`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from backdrop.bench import describe_machine, machine_info, shared_data_dir, update_markdown_section  # noqa: E402
from backdrop.superres.anchors import HELD_OUT, markdown, quality, read_frames, speed  # noqa: E402
from backdrop.superres.network import DEFAULT_BACKEND  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
CHROMIUM = os.environ.get("BACKDROP_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist", "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]
PAGE = """async ([url, frames]) => {
  const { UpscaleView, fetchWeights } = await import("/static/gl-upscale.js");
  const im = new Image(); im.src = url; await im.decode();
  const bitmap = await createImageBitmap(im);
  const c = document.createElement("canvas"); document.body.append(c);
  const view = new UpscaleView(c, await fetchWeights());
  const next = () => new Promise((r) => requestAnimationFrame(r));
  const t0 = performance.now();
  for (let i = 0; i < frames; i++) { view.draw(bitmap, bitmap.width, bitmap.height); await next(); }
  const wall = (performance.now() - t0) / frames;
  for (let i = 0; i < 20 && view.stats().measured < 3; i++) await new Promise((r) => setTimeout(r, 100));
  return { ...view.stats(), frame_wall_ms: Math.round(wall * 10) / 10,
           renderer: (() => { const gl = view.gl; const e = gl.getExtension("WEBGL_debug_renderer_info");
                              return e ? gl.getParameter(e.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); })() };
}"""


def page_speed(frame, frames: int) -> dict:
    from playwright.sync_api import sync_playwright

    from backdrop.web.server import ServerConfig, ServerThread

    ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    url = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()
    with ServerThread(ServerConfig(port=0)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(srv.url + "viewer")
            return {**page.evaluate(PAGE, [url, frames]), "load": [round(x, 2) for x in os.getloadavg()]}
        finally:
            browser.close()


CROPS = {  # (x, y, width, height) in the 720x1280 held-out frame: what ringing or a grid would spoil
    "face": (240, 480, 240, 100), "hair": (260, 200, 200, 100), "text": (10, 605, 110, 95),
}


def crops(clip: Path, out_dir: Path, frame_index: int = 29) -> list[Path]:
    """Side by side at full size: original | bicubic | FSR 1 | ours, for each of
    :data:`CROPS`, from the held-out clip after H.264 at 500 kbit/s (MIT licence: LivePortrait)."""
    from backdrop.superres.anchors import method
    from backdrop.superres.degrade import call_degrade

    frames = read_frames(clip, frame_index + 1)
    decoded = call_degrade(frames, "h264", 500)[frame_index]
    f = frames[frame_index]
    h, w = f.shape[:2]
    low = cv2.cvtColor(decoded, cv2.COLOR_YUV2RGB_I420)
    ups = {"bicubic": cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)}
    # FSR 1 and ours on luma, with the bilinear colour, as a viewer would see them
    yuv = cv2.cvtColor(cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2YUV_I420)
    for name in ("fsr1", "ours"):
        planes = yuv.copy()
        planes[:h] = method(name)(decoded[:h // 2])
        ups[name] = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (x, y, cw, ch) in CROPS.items():
        tiles = [f[y:y + ch, x:x + cw]] + [ups[k][y:y + ch, x:x + cw] for k in ("bicubic", "fsr1", "ours")]
        sep = np.full((ch, 4, 3), 255, np.uint8)
        row = np.concatenate(sum(([t, sep] for t in tiles), [])[:-1], axis=1)
        path = out_dir / f"upscale-{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        written.append(path)
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=60, help="frames of the held-out clip (default 60)")
    ap.add_argument("--page-frames", type=int, default=60, help="frames the page upscales (default 60)")
    ap.add_argument("--no-page", action="store_true", help="skip the Chromium measurement")
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--crops", type=Path, default=None, metavar="DIR",
                    help="also write face / hair / text crops (original | bicubic | FSR 1 | ours) here")
    args = ap.parse_args(argv)

    clip = shared_data_dir().joinpath(*HELD_OUT)
    if args.crops:
        for path in crops(clip, args.crops):
            print(f"upscale: wrote {path}", file=sys.stderr)
    print(f"upscale: quality on {clip.name}...", file=sys.stderr, flush=True)
    q = quality(clip, frames=args.frames)
    office = shared_data_dir() / "clips" / "office-desk-960x540.mp4"
    frame = cv2.resize(read_frames(office if office.exists() else clip, 1)[0], (640, 360), interpolation=cv2.INTER_AREA)
    print("upscale: Python speed...", file=sys.stderr, flush=True)
    sp = speed(frame)
    page = None
    if not args.no_page:
        print("upscale: the page (headless Chromium)...", file=sys.stderr, flush=True)
        page = page_speed(frame, args.page_frames)
    result = {"machine": machine_info(), "quality": q, "speed": sp, "page": page}
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2))
    text = report(result)
    print(text)
    if not args.no_doc:
        update_markdown_section(args.doc, "upscale", text)
        print(f"upscale: wrote {args.doc}", file=sys.stderr)
    return 0


def report(r: dict) -> str:
    q, sp, page = r["quality"], r["speed"], r["page"]
    ours = q["mean"]["ours"]["psnr"]
    best_classic = max((m for m in q["mean"] if m != "ours"), key=lambda m: q["mean"][m]["psnr"])
    lines = [
        f"_{_dt.date.today().isoformat()}, `python benchmarks/upscale.py`; {describe_machine(r['machine'])}_",
        "",
        f"Held-out clip `{q['clip']}` ({q['size'][0]}x{q['size'][1]}, never trained on), first frames shrunk x2 "
        f"(area) and sent through each codec at the bit rate shown, {q['frames_scored']} frames scored per "
        "setting; Y-PSNR in dB and SSIM on Y against the original frames. Python ms: one 640x360 -> 1280x720 "
        "frame, median of 30 (anchors on the Y plane only; ours for the whole frame, RGB and I420).",
        "",
        markdown(q, sp, {"ours": page["pass_ms_p50"]} if page and page.get("pass_ms_p50") else None),
        "",
        f"Ours vs bicubic: **{ours - q['mean']['bicubic']['psnr']:+.2f} dB**; vs the best classical anchor "
        f"({best_classic}): {ours - q['mean'][best_classic]['psnr']:+.2f} dB.",
        "",
        "Network backends, ms per 640x360 frame (min / median of 30; the network alone, the RGB API, the I420 path):",
        "",
        "| backend | network | RGB frame | I420 frame |",
        "|---|---|---|---|",
    ]
    for name, row in sp["ours"].items():
        cells = [f"{row[k]['min']:.1f} / {row[k]['median']:.1f}" if k in row else "" for k in ("net", "rgb", "planar")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    row = sp["ours"][DEFAULT_BACKEND]
    lines += ["", f"Load average (1, 5, 15 min) before / after the speed runs: {sp['load_before']} / "
              f"{sp['load_after']}. The default ({DEFAULT_BACKEND}), one RGB frame: median "
              f"{row['rgb']['median']:.1f} ms = **{1000 / row['rgb']['median']:.0f} frames/s** (best "
              f"{1000 / row['rgb']['min']:.0f}); I420 frame (`backdrop upscale` on a video): median "
              f"{row['planar']['median']:.1f} ms = {1000 / row['planar']['median']:.0f} frames/s."]
    if page:
        lines += ["", f"Page (headless Chromium, {page['renderer']}): network passes "
                  f"{page['pass_ms_p50']} ms p50 / {page['pass_ms_p95']} ms p95 per 640x360 -> 1280x720 frame "
                  f"({page['timer']}, {page['measured']} frames timed), {page['frame_wall_ms']} ms per animation "
                  f"frame; load {page['load']}."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
