"""On-device page vs the server path, in headless Chromium (``backdrop serve``, issue 13).

    python benchmarks/browser_local.py                        # office-desk, 640x360 and 1280x720, ~9 minutes
    python benchmarks/browser_local.py --warmup 3 --seconds 8 --json /tmp/local.json
    python benchmarks/browser_local.py --only device,profile  # device server profile passes matte

What runs (all on 127.0.0.1): ``backdrop serve`` as a subprocess (defaults: blur background), and
Debian's Chromium driven by Playwright, its fake camera playing a .y4m of the clip's frames
resized with ``cv2.INTER_AREA`` (``--use-file-for-fake-video-capture``; the file loops at 30 fps).
WebGL2 is SwiftShader (software): ``--use-angle=swiftshader --enable-unsafe-swiftshader``.

* **device**: the page in on-device mode (the default): its WASM segmentation runtime and the
  WebGL2 passes. After ``--warmup`` s, for ``--seconds`` s: fps = frames the page composited per
  second (``window.backdrop.stats().frames``), frame ms p50/p95 over the same frames (the array
  ``stats()`` reads), the per-stage ms of ``stats().stages_ms`` (median of samples every 0.5 s).
* **server**: the same y4m with ``?on=server``: the server's processed fps (``stats().fps``), the
  fps the page receives (``requestVideoFrameCallback`` on the processed <video>), latency p50,
  and what WebRTC really sent (``getStats``: Chrome scales the camera down when it thinks the
  link is slow).
* **matte**: a y4m of ONE frame repeated; on-device mode with ``setSettings({kind: "matte"})``;
  the captured stream (``window.backdrop.stream``) is played into a <video> inside the page, drawn
  to a 2D canvas and returned as PNG. Against the Python default pipeline's matte of the frame the
  browser's camera delivered (``Pipeline().matte`` 10 times: temporal fusion), both thresholded at
  0.5: IoU, and the mean absolute difference of the soft mattes. Diagnostics: the same against
  Python with ROI / cleanup off and the raw network; images of the disagreement go to ``--out``.
* **passes**: one on-device page at the first size, passes switched off one after another with
  ``setSettings`` (``PASSES``), fps over ``--seconds / 2`` each.
* **profile**: the on-device page with ``&profile``: the page makes the GPU finish each pass
  before reading its clock, so ``stages_ms`` are true per-pass costs (without it GL calls return
  before SwiftShader has done the work); the fps lose the CPU/GPU overlap.

CPU % is a process tree's CPU time over wall time (100 = one core); ``--settle`` waits for the
1-minute load to fall before each run (the last run's Chromium counts too). Goals of the issue:
on-device >= 30 fps at 640x360, >= 2x the server's fps at 1280x720, matte IoU >= 0.95.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIP = SHARED / "clips" / "office-desk-960x540.mp4"
PORTRAIT = SHARED / "clips" / "talking-portrait-720x1280.mp4"
CHROMIUM = os.environ.get("BACKDROP_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--ignore-gpu-blocklist", "--no-first-run", "--disable-background-networking", "--disable-sync",
         "--disable-component-update", "--disable-extensions", "--mute-audio", "--use-fake-ui-for-media-stream",
         "--use-fake-device-for-media-stream", "--disable-features=WebRtcHideLocalIpsWithMdns,Translate"]
SERVER_CHILD = """
from backdrop.web.server import ServerConfig, serve
serve(ServerConfig(host="127.0.0.1", port=0, background="blur"), on_ready=lambda url: print(url, flush=True))
"""
READY = "() => window.backdrop && typeof window.backdrop.stats === 'function' ? window.backdrop.stats() : null"
COUNT_RECEIVED = """() => {  // frames the processed <video> shows (server mode)
  const v = document.getElementById("processed");
  if (!window.__received) {
    window.__received = { n: 0 };
    const tick = () => { window.__received.n += 1; v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
  }
  return { n: window.__received.n, w: v.videoWidth, h: v.videoHeight };
}"""
RTP = """async () => {  // server mode: what the browser's WebRTC encoder really sent, and why it scaled down
  const out = {};
  (await window.backdrop.pc.getStats()).forEach((r) => {
    if (r.kind === "video" && r.type === "outbound-rtp") out.sent = [r.frameWidth, r.frameHeight, r.qualityLimitationReason];
    if (r.kind === "video" && r.type === "inbound-rtp") out.received = [r.frameWidth, r.frameHeight, r.framesPerSecond];
  });
  return out;
}"""
GRAB = """async () => {  // the captured stream and the camera, as PNG data URLs
  const v = document.createElement("video");
  v.muted = true; v.playsInline = true; v.srcObject = window.backdrop.stream;
  await v.play();
  for (let i = 0; i < 4; i += 1) await new Promise((r) => v.requestVideoFrameCallback(() => r()));
  const png = (src, w, h) => {
    const c = document.createElement("canvas"); c.width = w; c.height = h;
    c.getContext("2d").drawImage(src, 0, 0, w, h); return c.toDataURL("image/png");
  };
  const cam = document.getElementById("local");
  const got = { stream: png(v, v.videoWidth, v.videoHeight), camera: png(cam, cam.videoWidth, cam.videoHeight) };
  v.pause(); v.srcObject = null;
  return got;
}"""


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


SETTLE = [1.5]  # --settle


def settle(max_wait: float = 120.0) -> None:
    """Let the 1-minute load fall below --settle (the last run's Chromium included) before a run."""
    end = time.monotonic() + max_wait
    while os.getloadavg()[0] > SETTLE[0] and time.monotonic() < end:
        time.sleep(5)


def clip_frames(clip: Path, n: int, size: tuple[int, int], start: int = 0) -> list[np.ndarray]:
    from backdrop.io.video import VideoReader

    out = []
    for i, f in zip(range(start + n), VideoReader(clip)):
        if i >= start:
            out.append(cv2.resize(f.image, size, interpolation=cv2.INTER_AREA))
    return out


def tree_cpu(proc) -> float:
    import psutil

    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += sum(p.cpu_times()[:2])
    return total


def browser_tree():  # the Chromium that Playwright's driver started (its parent is not Chromium)
    import psutil

    roots = [p for p in psutil.Process().children(recursive=True)
             if "chrom" in p.name().lower() and p.parent() and "chrom" not in p.parent().name().lower()]
    return roots[0] if roots else None


def wait_stats(page, ok, timeout: float = 90.0):
    end, st = time.monotonic() + timeout, None
    while time.monotonic() < end:
        st = page.evaluate(READY)
        if errors := page.evaluate("() => (window.backdrop && window.backdrop.errors) || []"):
            raise RuntimeError(f"the page reported: {errors}")
        if st and ok(st):
            return st
        time.sleep(0.5)
    raise RuntimeError(f"the page did not start: {st}")


@contextlib.contextmanager
def open_page(pw, url: str, y4m: Path, where: str = "browser"):
    """A fresh Chromium whose camera plays ``y4m``, on ``url``, once the page processes frames."""
    settle()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-video-capture={y4m}"])
    try:
        page = b.new_page()
        page.goto(url)
        wait_stats(page, lambda s: s["frames"] > 3 and s["where"] == where)
        yield page
    finally:
        b.close()


def measure(pw, server: Server, y4m: Path, query: str, warmup: float, seconds: float, where: str) -> dict:
    with open_page(pw, server.url + query, y4m, where) as page:
        if where == "server":
            page.evaluate(COUNT_RECEIVED)
        time.sleep(warmup)
        chrome, load0 = browser_tree(), load()
        c0, sc0, t0 = tree_cpu(chrome), tree_cpu(server.ps), time.monotonic()
        s0 = page.evaluate(READY)
        r0 = page.evaluate(COUNT_RECEIVED) if where == "server" else None
        samples, stages = [], {}
        while time.monotonic() - t0 < seconds:
            time.sleep(0.5)
            samples.append(page.evaluate(READY))
            for k, v in (samples[-1].get("stages_ms") or {}).items():
                stages.setdefault(k, []).append(v)
        s1 = page.evaluate(READY)
        wall = time.monotonic() - t0
        out = {"where": where, "query": query, "load_before": load0, "load_after": load(),
               "browser_cpu_pct": round(100 * (tree_cpu(chrome) - c0) / wall, 1), "seconds": round(wall, 1),
               "server_cpu_pct": round(100 * (tree_cpu(server.ps) - sc0) / wall, 1),
               "stats_fps_median": float(np.median([x["fps"] for x in samples])), "stats_end": s1}
        if where == "browser":
            n = s1["frames"] - s0["frames"]
            times = page.evaluate("() => window.backdrop.times.slice()")[-min(n, 300):] if n else []
            size = page.evaluate("() => [document.getElementById('output').width, document.getElementById('output').height]")
            pct = lambda q: round(float(np.percentile(times, q)), 1) if times else None  # noqa: E731
            out.update(fps=round(n / wall, 1), frames=n, size=size, frame_ms_p50=pct(50), frame_ms_p95=pct(95),
                       stages_ms={k: round(float(np.median(v)), 1) for k, v in stages.items()},
                       runtime=s1["runtime"], input=s1.get("input"))
        else:
            r1 = page.evaluate(COUNT_RECEIVED)
            out.update(fps=round((r1["n"] - r0["n"]) / wall, 1), server_fps=s1["fps"], size=[r1["w"], r1["h"]],
                       latency_ms_p50=s1["frame_ms_p50"], latency_ms_p95=s1["frame_ms_p95"],
                       server_processed=s1["frames"] - s0["frames"], rtp=page.evaluate(RTP))
        return out


PASSES = [("blur (default)", {}), ("colour background", {"colour": "#00b140"}), ("- decontaminate", {"decontaminate": False}),
          ("- refine", {"refine": False}), ("- temporal", {"temporal": 0}), ("effect off", {"effect": False})]


def passes(pw, server: Server, y4m: Path, w: int, h: int, warmup: float, seconds: float) -> list[dict]:
    with open_page(pw, server.url + f"?w={w}&h={h}", y4m) as page:
        time.sleep(warmup)
        out = []
        for name, patch in PASSES:  # each step keeps the ones before it
            page.evaluate("(p) => window.backdrop.setSettings(p)", patch)
            time.sleep(2)
            l0, f0, t0 = load(), page.evaluate(READY)["frames"], time.monotonic()
            time.sleep(seconds)
            out.append({"step": name, "fps": round((page.evaluate(READY)["frames"] - f0) / (time.monotonic() - t0), 1),
                        "load": [l0[0], load()[0]]})
            print(json.dumps(out[-1]), flush=True)
        return out


def decode(url: str) -> np.ndarray:  # a PNG data URL -> RGB
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), 1), cv2.COLOR_BGR2RGB)


def python_mattes(frame: np.ndarray) -> dict[str, np.ndarray]:
    """The Python pipeline's matte of a still frame: 10 calls (temporal fusion settles), the last."""
    from backdrop import Pipeline, PipelineOptions

    cfg = {"default": {}, "no-roi": dict(roi=False), "no-roi-cleanup": dict(roi=False, cleanup=False), "raw": None}
    pipes = {k: Pipeline(options=PipelineOptions.raw()) if kw is None else Pipeline(quiet=True, **kw) for k, kw in cfg.items()}
    return {k: [p.matte(frame) for _ in range(10)][-1] for k, p in pipes.items()}


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    A, B, union = a >= 0.5, b >= 0.5, ((a >= 0.5) | (b >= 0.5)).sum()
    edge = cv2.morphologyEx(B.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    near = cv2.dilate(edge.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0  # within 4 px of Python's edge
    dis = A != B
    return {"iou": round(float((A & B).sum() / union), 4) if union else 1.0,
            "mad": round(float(np.abs(a - b).mean()), 4), "browser_person": round(float(A.mean()), 4),
            "python_person": round(float(B.mean()), 4), "disagree": round(float(dis.mean()), 4),
            "disagree_within_4px_of_edge": round(float((dis & near).sum() / max(1, dis.sum())), 3),
            "browser_only": int((A & ~B).sum()), "python_only": int((~A & B).sum())}


def matte_check(pw, url: str, name: str, frame: np.ndarray, tmp: Path, out_dir: Path) -> dict:
    from backdrop.io.camera import write_y4m

    h, w = frame.shape[:2]
    with open_page(pw, url + f"?w={w}&h={h}", write_y4m(tmp / f"still-{name}.y4m", [frame] * 30, fps=30)) as page:
        page.evaluate("() => window.backdrop.setSettings({kind: 'matte'})")
        n0 = page.evaluate(READY)["frames"]
        st = wait_stats(page, lambda s: s["frames"] > n0 + 20, timeout=120)  # temporal fusion settles
        stream, cam = (decode(v) for v in page.evaluate(GRAB).values())
    fit = lambda im: im if im.shape[:2] == (h, w) else cv2.resize(im, (w, h), interpolation=cv2.INTER_AREA)  # noqa: E731
    alpha, cam = fit(stream.astype(np.float32).mean(axis=2) / 255.0), fit(cam)
    refs = python_mattes(cam)  # the frame as the browser's camera delivered it (y4m -> I420 -> RGB)
    res = {"name": name, "size": [w, h], "runtime": st["runtime"], "stream_size": list(stream.shape[1::-1]),
           "camera_vs_y4m_frame_mad": round(float(np.abs(cam.astype(float) - frame).mean()), 2),
           "stream_grey_spread": round(float(np.abs(stream.astype(float) - stream.mean(axis=2, keepdims=True)).max()), 1),
           "vs": {k: agreement(alpha, m) for k, m in refs.items()}}
    A, B = alpha >= 0.5, refs["default"] >= 0.5
    vis = (cam * 0.35).astype(np.uint8)
    vis[A & ~B], vis[~A & B] = (255, 40, 40), (40, 120, 255)  # red: person in the browser only; blue: in Python only
    grey = lambda m: cv2.cvtColor((np.clip(m, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)  # noqa: E731
    res["image"] = str(out_dir / f"matte-{name}.png")  # camera | browser matte | Python default matte | disagreement
    cv2.imwrite(res["image"], cv2.cvtColor(np.concatenate([cam, grey(alpha), grey(refs["default"]), vis], 1), cv2.COLOR_RGB2BGR))
    return res


def table(res: dict) -> str:
    rows = ["| mode | camera | output | fps | frame ms p50 / p95 | server fps / latency p50 ms | sent by WebRTC (limit) "
            "| CPU % browser / server | load 1-min |", "|---|---|---|---:|---:|---:|---|---:|---|"]
    for r in res.get("runs", []):
        q = dict(kv.split("=") if "=" in kv else (kv, "") for kv in r["query"][1:].split("&"))
        common = f"{q['w']}x{q['h']} | {r['size'][0]}x{r['size'][1]} | **{r['fps']}**"
        tail = f"{r['browser_cpu_pct']} / {r['server_cpu_pct']} | {r['load_before'][0]:.2f} -> {r['load_after'][0]:.2f} |"
        if r["where"] == "browser":
            rows.append(f"| on-device{' ?profile' if r['mode'] == 'profile' else ''} | {common} | {r['frame_ms_p50']} / "
                        f"{r['frame_ms_p95']} | - | - | {tail}")
        else:
            sent = (r.get("rtp") or {}).get("sent") or ["?", "?", "?"]
            rows.append(f"| server | {common} | - | {r['server_fps']} / {r['latency_ms_p50']} | "
                        f"{sent[0]}x{sent[1]} ({sent[2]}) | {tail}")
    if res.get("mattes"):
        rows += ["", "| still frame | size | IoU vs Python default | MAD | disagree | of it within 4 px of Python's edge "
                 "| IoU vs Python no ROI / cleanup | vs raw |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for m in res["mattes"]:
            d = m["vs"]
            rows.append(f"| {m['name']} | {m['size'][0]}x{m['size'][1]} | **{d['default']['iou']}** | {d['default']['mad']} | "
                        f"{d['default']['disagree']} | {d['default']['disagree_within_4px_of_edge']} | "
                        f"{d['no-roi-cleanup']['iou']} | {d['raw']['iou']} |")
    if res.get("passes"):
        rows += ["", "| passes (one page, each step keeps the ones before) | fps | load 1-min |", "|---|---:|---|"]
        rows += [f"| {p['step']} | {p['fps']} | {p['load'][0]:.2f} -> {p['load'][1]:.2f} |" for p in res["passes"]]
    dev = [r for r in res.get("runs", []) if r["where"] == "browser"]
    if dev:
        names = sorted({k for r in dev for k in r["stages_ms"]}, key=lambda k: list(dev[0]["stages_ms"]).index(k)
                       if k in dev[0]["stages_ms"] else 99)
        rows += ["", "| stages_ms (median of 0.5 s samples) | " + " | ".join(
            f"{r['size'][0]}x{r['size'][1]}{' profile' if r['mode'] == 'profile' else ''}" for r in dev) + " |",
            "|---|" + "---:|" * len(dev)]
        rows += [f"| {k} | " + " | ".join(str(r["stages_ms"].get(k, "-")) for r in dev) + " |" for k in names]
        rows.append("| fps | " + " | ".join(str(r["fps"]) for r in dev) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--portrait", type=Path, default=PORTRAIT, help="a second clip for the matte check")
    ap.add_argument("--sizes", default="640x360,1280x720")
    ap.add_argument("--frames", type=int, default=75, help="frames of the clip in the looping y4m")
    ap.add_argument("--still", type=int, default=120, help="index of the clip frame for the matte check")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--only", default="device,server,profile,passes,matte")
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "browser_local")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--settle", type=float, default=1.5, help="wait (up to 2 min) for the 1-min load to fall below this")
    ap.add_argument("--server-src", type=Path, default=ROOT / "src", help="serve the page from another src/ (a snapshot)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from backdrop.io.camera import write_y4m

    only, SETTLE[0] = set(args.only.split(",")), args.settle
    sizes = [tuple(int(x) for x in s.split("x")) for s in args.sizes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    git = lambda *a: subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    static = sorted((args.server_src / "backdrop" / "web" / "static").glob("*"))  # which page was measured
    page_hash = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in static if f.is_file())).hexdigest()[:12]
    res = {"commit": git("rev-parse", "--short", "HEAD"), "server_src": str(args.server_src), "page_sha256_12": page_hash,
           "page_uncommitted": git("status", "--short", "--", "src/backdrop/web/static").splitlines(),
           "clip": args.clip.name, "chromium": version, "load_start": load(), "runs": [], "mattes": [],
           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count()}
    print(f"{version}; {os.cpu_count()} CPUs; load {res['load_start']}; page {page_hash} from {args.server_src}", flush=True)
    from live import ServerProcess  # benchmarks/live.py: the same child-process server

    server = ServerProcess(SERVER_CHILD, args.server_src)
    try:
        with tempfile.TemporaryDirectory(prefix="browser-local-") as tmp, sync_playwright() as pw:
            tmp = Path(tmp)
            if only & {"device", "server", "profile", "passes"}:
                for w, h in sizes:
                    y4m = write_y4m(tmp / f"clip-{w}x{h}.y4m", clip_frames(args.clip, args.frames, (w, h)), fps=30)
                    for mode, where, q, secs in (("device", "browser", "", args.seconds),
                                                 ("server", "server", "&on=server", args.seconds),
                                                 ("profile", "browser", "&profile", max(5.0, args.seconds / 2))):
                        if mode in only:
                            r = {**measure(pw, server, y4m, f"?w={w}&h={h}{q}", args.warmup, secs, where), "mode": mode}
                            res["runs"].append(r)
                            print(json.dumps({k: r[k] for k in r if k != "stats_end"}), flush=True)
                    if "passes" in only and (w, h) == sizes[0]:
                        res["passes"] = passes(pw, server, y4m, w, h, args.warmup, max(5.0, args.seconds / 2))
            if "matte" in only:
                w, h = sizes[0]
                stills = [(args.clip.stem, clip_frames(args.clip, 1, (w, h), start=args.still)[0])]
                if args.portrait.is_file():
                    stills.append((args.portrait.stem, clip_frames(args.portrait, 1, (h, w), start=args.still)[0]))
                for name, frame in stills:
                    res["mattes"].append(matte_check(pw, server.url, name, frame, tmp, args.out))
                    print(json.dumps(res["mattes"][-1]), flush=True)
    finally:
        server.close()
    res["load_end"] = load()
    print(f"\n{table(res)}\n\nload average: start {res['load_start']}, end {res['load_end']}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
