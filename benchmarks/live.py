"""Live numbers: ``backdrop serve`` over WebRTC on loopback, and the ``backdrop camera`` loop.

    python benchmarks/live.py                      # everything, ~4 minutes; writes docs/live.md
    python benchmarks/live.py --quick              # shorter runs
    python benchmarks/live.py --only camera        # camera | serve | soak
    python benchmarks/live.py --soak-peers 3 --soak-minutes 3
    python benchmarks/live.py --doc docs/benchmarks.md   # also/instead the benchmarks page

What is measured (all on 127.0.0.1, never another address):

* **server path latency**: a Python aiortc client sends 720p frames of a real clip at 30 fps and
  writes each frame's number into its top 16 rows; the server (a separate process, started with
  ``marker_rows=16`` so those rows pass through untouched) processes the frame and sends it
  back; the client reads the number from the returned frame. Latency = returned - sent, i.e.
  encode + network + decode + pipeline + encode + network + decode: glass-to-glass without the
  camera and the screen.
* **sustained fps at 720p, 1 and 3 peers**: frames returned per second per peer after warm-up.
* **CPU per peer**: the server process's CPU time over the run / wall time / peers (100% = one
  core). The client's own CPU (it encodes and decodes too) is reported beside it.
* **backdrop camera latency**: the live loop (capture thread -> processing thread -> output)
  with the file-backed fake camera at 720p / 30 fps, default pipeline, frames converted to YUYV
  as the virtual camera sink does; latency = output time - capture time.
* **soak**: N peers for M minutes (one peer reconnects every 30 s), the server's RSS, threads and
  asyncio tasks sampled every 10 s: they must stay flat.

Numbers depend on the machine; the machine line is printed with them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIP = SHARED / "clips" / "office-desk-960x540.mp4"


def machine() -> str:
    try:
        import psutil

        load = ", load %.1f" % os.getloadavg()[0]
        cpus = f"{psutil.cpu_count(logical=True)} logical CPUs"
    except Exception:  # pragma: no cover
        load, cpus = "", f"{os.cpu_count()} CPUs"
    return f"{platform.processor() or platform.machine()}, {cpus}{load}, Python {platform.python_version()}"


def load_frames(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    import cv2

    from backdrop.io.video import VideoReader

    out = []
    for _, f in zip(range(n), VideoReader(CLIP)):
        out.append(cv2.resize(f.image, size, interpolation=cv2.INTER_LINEAR))
    return out


# -- the server in its own process ---------------------------------------------------------------------
SERVER_CHILD = """
import sys
from backdrop.web.server import ServerConfig, serve
cfg = ServerConfig(host="127.0.0.1", port=0, marker_rows=16, background="blur", max_peers=8, idle_timeout=15)
serve(cfg, on_ready=lambda url: print(url, flush=True))
"""


class ServerProcess:
    """``backdrop serve`` in a child process running ``child`` (its URL on the first stdout line),
    from the sources in ``src``; also used by benchmarks/browser_local.py."""

    def __init__(self, child: str = SERVER_CHILD, src: Path = ROOT / "src"):
        env = {**os.environ, "PYTHONPATH": str(src)}
        self.proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"server did not start: {self.url!r}")
        import psutil

        self.ps = psutil.Process(self.proc.pid)

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stats(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.url + "stats", timeout=10) as r:
            return json.loads(r.read())

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- serve: latency, fps, CPU --------------------------------------------------------------------------
async def _serve_run(url: str, frames, peers: int, seconds: float, warmup: float, server: ServerProcess):
    import psutil

    from backdrop.web.client import Client

    clients = [Client(url, frames, fps=30, marker=True) for _ in range(peers)]
    for c in clients:
        await c.connect()
    await asyncio.sleep(warmup)
    for c in clients:
        c.latencies_ms.clear()
    n0 = [c.received for c in clients]
    me = psutil.Process()
    cpu_s0, cpu_c0 = server.cpu_seconds(), sum(me.cpu_times()[:2])
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    cpu_s = server.cpu_seconds() - cpu_s0
    cpu_c = sum(me.cpu_times()[:2]) - cpu_c0
    fps = [(c.received - n) / wall for c, n in zip(clients, n0)]
    lat = np.concatenate([np.asarray(c.latencies_ms) for c in clients]) if clients else np.array([])
    for c in clients:
        await c.close()
    return {
        "peers": peers, "seconds": round(wall, 1), "fps_per_peer": [round(x, 1) for x in fps],
        "fps_mean": round(float(np.mean(fps)), 1),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if lat.size else None,
        "latency_samples": int(lat.size),
        "server_cpu_pct": round(100 * cpu_s / wall, 1), "server_cpu_pct_per_peer": round(100 * cpu_s / wall / peers, 1),
        "server_cpu_ms_per_frame": round(1000 * cpu_s / max(1, sum(c.received - n for c, n in zip(clients, n0))), 1),
        "client_cpu_pct": round(100 * cpu_c / wall, 1),
    }


def bench_serve(peers_list=(1, 3), seconds=20.0, warmup=4.0, size=(1280, 720)) -> list[dict]:
    from backdrop.web.server import loopback_ice

    frames = load_frames(30, size)
    results = []
    for peers in peers_list:
        server = ServerProcess()
        try:
            with loopback_ice():
                r = asyncio.run(_serve_run(server.url, frames, peers, seconds, warmup, server))
            r["size"] = f"{size[0]}x{size[1]}"
            results.append(r)
            print(f"serve {r['size']} {peers} peer(s): {r['fps_mean']} fps/peer, latency p50 "
                  f"{r['latency_ms_p50']} ms p95 {r['latency_ms_p95']} ms, server CPU {r['server_cpu_pct']}% "
                  f"({r['server_cpu_pct_per_peer']}%/peer), client CPU {r['client_cpu_pct']}%", flush=True)
        finally:
            server.close()
    return results


# -- camera loop --------------------------------------------------------------------------------------
def bench_camera(seconds=20.0, size=(1280, 720)) -> dict:
    from backdrop.io.camera import FileCamera
    from backdrop.io.virtualcam import rgb_to_yuyv
    from backdrop.live import LiveLoop, LiveProcessor, LiveSettings

    cam = FileCamera(CLIP, fps=30, realtime=True, loop=True, size=size)
    proc = LiveProcessor(LiveSettings(background="blur"))
    proc(cam.read())  # warm the model

    class YuyvSink:  # what VirtualCamSink does per frame, minus the device write
        def write(self, image, frame):
            rgb_to_yuyv(image)

        def close(self):
            pass

    loop = LiveLoop(cam, proc, YuyvSink(), queue_size=1)
    stats = loop.run(duration=seconds)
    lat = np.asarray(loop.stats.latencies_ms())
    cam.close()
    out = {"size": f"{size[0]}x{size[1]}", "camera_fps": 30, "seconds": stats["seconds"], "fps": stats["fps"],
           "output": stats["output"], "captured": stats["captured"] + cam.skipped,
           "dropped": stats["dropped_before_processing"] + stats["dropped_before_output"] + cam.skipped,
           "latency_ms_p50": round(float(np.percentile(lat, 50)), 1),
           "latency_ms_p95": round(float(np.percentile(lat, 95)), 1),
           "process_ms_p50": stats["process_ms_p50"]}
    print(f"camera {out['size']}: {out['fps']} fps out of 30, latency p50 {out['latency_ms_p50']} ms "
          f"p95 {out['latency_ms_p95']} ms, processing {out['process_ms_p50']} ms/frame, "
          f"{out['dropped']} of {out['captured']} frames dropped", flush=True)
    return out


# -- soak -----------------------------------------------------------------------------------------------
async def _soak(server: ServerProcess, frames, peers: int, minutes: float, size, churn_every: float = 30.0):
    from backdrop.web.client import Client

    samples = []
    clients = [Client(server.url, frames, fps=15) for _ in range(peers)]
    for c in clients:
        await c.connect()
    t0 = time.monotonic()
    end = t0 + minutes * 60
    next_sample = t0
    next_churn = t0 + churn_every
    reconnects = 0
    received = 0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= next_sample:
            s = server.stats()
            samples.append({"t_s": round(now - t0), "rss_mb": s["rss_mb"], "threads": s["threads"],
                            "tasks": s["tasks"], "publishers": s["publishers"]})
            print(f"  soak t={samples[-1]['t_s']:>4}s rss {s['rss_mb']} MB threads {s['threads']} "
                  f"tasks {s['tasks']} peers {s['publishers']}", flush=True)
            next_sample = now + 10
        if now >= next_churn:  # one peer leaves and a new one joins
            old = clients.pop(0)
            received += old.received
            await old.close()
            c = Client(server.url, frames, fps=15)
            await c.connect()
            clients.append(c)
            reconnects += 1
            next_churn = now + churn_every
        await asyncio.sleep(0.5)
    for c in clients:
        received += c.received
        await c.close()
    await asyncio.sleep(3)
    s = server.stats()
    after = {"rss_mb": s["rss_mb"], "threads": s["threads"], "tasks": s["tasks"], "publishers": s["publishers"]}
    return samples, reconnects, received, after


def bench_soak(peers=3, minutes=3.0, size=(640, 360), churn_every=30.0) -> dict:
    from backdrop.web.server import loopback_ice

    frames = load_frames(30, size)
    server = ServerProcess()
    try:
        idle = server.stats()
        with loopback_ice():
            samples, reconnects, received, after = asyncio.run(_soak(server, frames, peers, minutes, size, churn_every))
    finally:
        server.close()
    warm = [s for s in samples if s["t_s"] >= 30] or samples
    out = {"peers": peers, "minutes": minutes, "size": f"{size[0]}x{size[1]}", "fps_sent": 15, "churn_every_s": churn_every,
           "reconnects": reconnects, "frames_returned": received,
           "idle": {"rss_mb": idle["rss_mb"], "threads": idle["threads"], "tasks": idle["tasks"]},
           "rss_mb_first_after_30s": warm[0]["rss_mb"], "rss_mb_last": samples[-1]["rss_mb"],
           "rss_mb_max": max(s["rss_mb"] for s in samples),
           "threads_min": min(s["threads"] for s in warm), "threads_max": max(s["threads"] for s in warm),
           "tasks_min": min(s["tasks"] for s in warm), "tasks_max": max(s["tasks"] for s in warm),
           "after_all_left": after, "samples": samples}
    print(f"soak: {peers} peers x {minutes} min, rss {out['rss_mb_first_after_30s']} -> {out['rss_mb_last']} MB "
          f"(max {out['rss_mb_max']}), threads {out['threads_min']}-{out['threads_max']}, tasks "
          f"{out['tasks_min']}-{out['tasks_max']}; after all left: {after}", flush=True)
    return out


# -- report ---------------------------------------------------------------------------------------------
def markdown(results: dict) -> str:
    lines = [f"Measured {results['date']} on {results['machine']}.", ""]
    if results.get("note"):
        lines += [results["note"], ""]
    if results.get("serve"):
        lines += ["| server path (loopback, Python aiortc client) | fps per peer (sent 30) | latency p50 | "
                  "latency p95 | server CPU per peer | server CPU per frame | client CPU |",
                  "|---|---|---|---|---|---|---|"]
        for r in results["serve"]:
            per_frame = r.get("server_cpu_ms_per_frame")
            if per_frame is None and r["fps_mean"]:
                per_frame = round(r["server_cpu_pct"] * 10 / (r["fps_mean"] * r["peers"]), 1)
            lines.append(f"| {r['size']}, {r['peers']} peer{'s' if r['peers'] > 1 else ''} | {r['fps_mean']} | "
                         f"{r['latency_ms_p50']} ms | {r['latency_ms_p95']} ms | {r['server_cpu_pct_per_peer']}% | "
                         f"{per_frame} ms | {r['client_cpu_pct']}% |")
        lines.append("")
    if results.get("camera"):
        c = results["camera"]
        lines += ["| `backdrop camera` loop (fake camera, YUYV out) | fps (camera 30) | latency p50 | latency p95 | "
                  "processing per frame | dropped |", "|---|---|---|---|---|---|",
                  f"| {c['size']} | {c['fps']} | {c['latency_ms_p50']} ms | {c['latency_ms_p95']} ms | "
                  f"{c['process_ms_p50']} ms | {c['dropped']} of {c['captured']} |", ""]
    if results.get("soak"):
        s = results["soak"]
        a = s["after_all_left"]
        lines += [f"Soak: {s['peers']} peers at {s['size']} / {s['fps_sent']} fps for {s['minutes']} min, one "
                  f"peer reconnecting every {s.get('churn_every_s', 30):g} s ({s['reconnects']} reconnects, {s['frames_returned']} frames "
                  f"returned). Server RSS {s['rss_mb_first_after_30s']} MB at 30 s -> {s['rss_mb_last']} MB at the "
                  f"end (max {s['rss_mb_max']} MB); threads {s['threads_min']}-{s['threads_max']}, asyncio tasks "
                  f"{s['tasks_min']}-{s['tasks_max']} while streaming; after every peer left: {a['publishers']} "
                  f"peers, {a['threads']} threads, {a['tasks']} tasks, {a['rss_mb']} MB (idle before: "
                  f"{s['idle']['threads']} threads, {s['idle']['tasks']} tasks, {s['idle']['rss_mb']} MB).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["camera", "serve", "soak"], action="append")
    ap.add_argument("--quick", action="store_true", help="shorter runs (10 s each, 1 minute soak)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per serve/camera run")
    ap.add_argument("--soak-peers", type=int, default=3)
    ap.add_argument("--soak-minutes", type=float, default=3.0)
    ap.add_argument("--note", default="", help="a line printed above the tables (e.g. how busy the machine was)")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--doc", action="append", default=None,
                    help="markdown file(s) whose <!-- BEGIN live --> section is rewritten (default docs/live.md)")
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args(argv)
    parts = set(args.only or ["camera", "serve", "soak"])
    seconds = 10.0 if args.quick else args.seconds
    results = {"date": _dt.date.today().isoformat(), "machine": machine(), "note": args.note}
    print(results["machine"], flush=True)
    if "camera" in parts:
        results["camera"] = bench_camera(seconds)
    if "serve" in parts:
        results["serve"] = bench_serve(seconds=seconds, warmup=3.0 if args.quick else 4.0)
    if "soak" in parts:
        results["soak"] = bench_soak(args.soak_peers, 1.0 if args.quick else args.soak_minutes)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    text = markdown(results)
    print(text)
    if not args.no_doc:
        from backdrop.bench import update_markdown_section

        for doc in args.doc or [str(ROOT / "docs" / "live.md")]:
            update_markdown_section(Path(doc), "live", text, title="# Live: camera and browser")
    return 0


if __name__ == "__main__":
    sys.exit(main())
