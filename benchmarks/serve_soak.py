"""Loopback soak of ``backdrop serve`` under attack: does a real peer keep its frame rate, and do the
server's fds, threads and RSS stay bounded?

    python benchmarks/serve_soak.py                            # 20 s alone, 20 s attacked, 25 s after
    python benchmarks/serve_soak.py --rounds 3 --json soak.json # alone/attacked three times over
    python benchmarks/serve_soak.py --offers 100 --gets 40 --slow 400   # a heavier mix
    python benchmarks/serve_soak.py --reconnect 0.05           # slow sockets reopened at once: a churn flood
    python benchmarks/serve_soak.py --frame-worker thread      # the pipeline on a server thread (before)

What runs (all on 127.0.0.1):

* the server: ``backdrop serve --port 0`` as a subprocess, defaults otherwise (blur background,
  max 4 peers, 256 connections, 5 s header timeout, 3 offers/s per address);
* one real peer in this process: an aiortc client (``backdrop.web.client.Client``) sending a real
  clip (``clips/talking-room-512x480.mp4`` of the shared data) at 30 fps and receiving the
  processed stream; its fps is the frames it received per second;
* the attack, in a separate process (``benchmarks/serve_attack.py``: one asyncio loop, raw
  sockets): offer spam (valid SDP, junk, text/plain, foreign Host / Origin, guessed /view tokens),
  foreign-Host GETs of /stats /peers /view, slow sockets (headers a byte at a time, never
  finished; half a request line; an offer body that trickles), reopened when the server closes them,
  and the on-device routes: POST /local registrations, answers and stats with wrong secrets or junk,
  GET /runtime and /model, a couple of hundred long polls held open on the streams the attacker
  registered, slow readers of the 9 MB runtime file, and viewer offers to those streams from six
  loopback addresses (each its own offer bucket) that the attacker's polls take and never answer,
  so each is held until the server's answer timeout (``benchmarks/serve_attack_local.py``).

Phases: warm-up, then ``--rounds`` times **baseline** (the peer alone) and **attack** (same length,
a fresh attacker process), then **after** (the attack over; 25 s, past the 20 s in which offers
that were answered but never connected are dropped). Alternating evens out what else the machine
is doing; the ratio is mean attacked fps over mean baseline fps. Every second the open fds
(``/proc/PID/fd``), threads (``/proc/PID/status``), RSS and CPU of the server and every process
under it (forkserver, frame workers; ``serve_soak_probe.py``) are sampled, and ``GET /stats`` is
timed (a real HTTP client next to the attack). The attacker shares the cores with the server
and the peer; its own CPU is reported beside the result, and the load average with every phase.
Results: ``docs/reliability.md`` (Soak under attack).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from serve_attack import add_mix_args  # noqa: E402  (the attack mix's knobs, declared once)
from serve_soak_probe import Sampler, Server, busy, load, machine_cpu  # noqa: E402  (the server and its samples)

SHARED = Path(os.environ.get("BACKDROP_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIP = SHARED / "clips" / "talking-room-512x480.mp4"


def load_frames(n: int):
    from backdrop.io.video import VideoReader

    return [f.image for _, f in zip(range(n), VideoReader(CLIP))]


def fps_between(times: list[float], t0: float, t1: float) -> float:
    return sum(t0 <= t < t1 for t in times) / (t1 - t0)


async def soak(server: Server, sampler: Sampler, args) -> dict:
    from backdrop.web.client import Client

    frames = load_frames(args.frames)
    peer = Client(server.url, frames, fps=args.fps)
    await peer.connect()
    loop = asyncio.get_running_loop()
    phases: list[dict] = []
    attacks: list[dict] = []

    async def phase(name: str, seconds: float) -> None:
        sampler.phase = name
        t0, cpu0 = time.perf_counter(), machine_cpu()
        before = [m for m in peer.messages if m.get("type") == "stats"][-1:]
        await asyncio.sleep(seconds)
        t1, (used, steal) = time.perf_counter(), busy(cpu0, machine_cpu())
        server_stats = [m for m in peer.messages if m.get("type") == "stats"]
        first = (before or server_stats[:1] or [{}])[0]
        # the server's own counts over the phase: frames decoded, composited and sent, dropped unprocessed
        counts = {k: (server_stats[-1].get(k, 0) - first.get(k, 0)) if server_stats else None
                  for k in ("received", "processed", "dropped")}
        phases.append({"name": name, "seconds": round(t1 - t0, 1),
                       "fps": round(fps_between(peer.received_times, t0, t1), 2),
                       "fps_per_second": [round(fps_between(peer.received_times, t, t + 1), 1)
                                          for t in [t0 + k for k in range(int(t1 - t0))]],
                       "server_latency_ms_p50": server_stats[-1].get("latency_ms_p50") if server_stats else None,
                       # the pipeline's own share of that (the frame worker's round trip), last 300 frames
                       "server_process_ms_p50": server_stats[-1].get("process_ms") if server_stats else None,
                       "server_counts": counts,
                       "load_average": load(), "machine_busy_pct": used, "steal_pct": steal})
        print(f"  {name:<10} {phases[-1]['fps']:>6.2f} fps  (load {load()}; machine {used}% busy, "
              f"{steal}% stolen; server {counts['received']} in, {counts['processed']} out, "
              f"{counts['dropped']} dropped)", flush=True)

    async def attack(name: str) -> None:
        sampler.phase = "attacker starting"  # its imports and SDP are not part of the attack
        cmd = [sys.executable, str(ROOT / "benchmarks" / "serve_attack.py"), server.url, "--seconds",
               str(args.seconds), "--offers", str(args.offers), "--gets", str(args.gets), "--slow", str(args.slow),
               "--reconnect", str(args.reconnect), "--local", str(args.local), "--polls", str(args.polls),
               "--readers", str(args.readers), "--views", str(args.views), "--addresses", str(args.addresses)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        try:
            ready = await loop.run_in_executor(None, proc.stdout.readline)
            if ready.strip() != "ready":
                raise RuntimeError(f"the attacker did not start: {ready!r}")
            await phase(name, args.seconds)
            out = await loop.run_in_executor(None, proc.communicate)
            attacks.append(json.loads(out[0].strip().splitlines()[-1]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    await phase("warm-up", args.warmup)
    for r in range(1, args.rounds + 1):
        await phase(f"baseline {r}", args.seconds)
        await attack(f"attack {r}")
    await phase("after", args.after)
    await peer.close()
    return {"phases": phases, "attacks": attacks,
            "errors_to_peer": [m.get("message") for m in peer.messages if m.get("type") == "error"]}


def kind(phase: str) -> str:
    return phase.split()[0]


def summarize(samples: list[dict], result: dict) -> dict:
    by = {k: [s for s in samples if kind(s["phase"]) == k] for k in ("baseline", "attack", "after")}
    series = {}
    for key in ("fds", "threads", "rss_mb", "tasks", "cpu_pct", "stats_ms", "local_polls", "local_publishers",
                "local_views_waiting"):
        row = {}
        for p, ss in by.items():
            vals = [s[key] for s in ss if s.get(key) is not None]
            row[p] = {"min": min(vals), "max": max(vals), "last": vals[-1]} if vals else None
        series[key] = row
    # growing without bound shows as a level that keeps rising from one attack round to the next
    per_round = {}
    for key in ("fds", "threads", "rss_mb"):
        per_round[key] = [max((s[key] for s in samples if s["phase"] == ph["name"]), default=None)
                          for ph in result["phases"] if kind(ph["name"]) == "attack"]
    base = by["baseline"]
    first_base = [s for s in base if s["phase"] == "baseline 1"]
    after = by["after"][-1] if by["after"] else None
    back = None if after is None else {
        "fds": after["fds"] <= max(s["fds"] for s in first_base) + 2,
        "threads": after["threads"] <= max(s["threads"] for s in first_base) + 1,
        "rss_mb": after["rss_mb"] <= max(s["rss_mb"] for s in samples if kind(s["phase"]) == "attack"),
    }
    fps = {k: [ph["fps"] for ph in result["phases"] if kind(ph["name"]) == k] for k in ("baseline", "attack")}
    b, a = sum(fps["baseline"]) / len(fps["baseline"]), sum(fps["attack"]) / len(fps["attack"])
    return {"series": series, "attack_round_max": per_round, "after_last": after, "back_to_baseline_after": back,
            "baseline_fps": round(b, 2), "attack_fps": round(a, 2), "fps_ratio": round(a / b, 3) if b else 0.0,
            "fps_ratio_per_round": [round(y / x, 3) if x else 0.0 for x, y in zip(fps["baseline"], fps["attack"])],
            "rss_mb_first_baseline_max": max(s["rss_mb"] for s in first_base),
            "stats_failed_during_attack": sum(s["stats_ms"] is None for s in by["attack"]),
            # a 1 s sampler that wakes seconds late: the whole machine stalled, not just the server
            "sampler_late_s_max": round(max((b["t_s"] - a["t_s"] - 1.0 for a, b in zip(samples, samples[1:])),
                                            default=0.0), 1)}


def merge_attacks(attacks: list[dict]) -> dict:
    total: dict = {"rounds": len(attacks), "requests": {}}
    for a in attacks:
        for k, v in a["requests"].items():
            row = total["requests"].setdefault(k, {})
            for code, n in v.items():
                row[code] = row.get(code, 0) + n
    for k in ("seconds", "requests_total", "slow_opened", "slow_closed_by_server", "skipped_inflight_full"):
        total[k] = round(sum(a[k] for a in attacks), 1)
    for k in ("local_per_s", "long_polls", "slow_readers", "held_views", "view_addresses"):
        total[k] = attacks[0].get(k)
    total["held_views_open_max"] = max(a.get("held_views_open_max", 0) for a in attacks)
    total["long_polls_open_max"] = max(a.get("long_polls_open_max", 0) for a in attacks)
    for k in ("offers_per_s", "gets_per_s", "slow_sockets"):
        total[k] = attacks[0][k]
    total["reconnect_s"] = attacks[0].get("reconnect_s")
    total["slow_lifetime_s_p50"] = sorted(a["slow_lifetime_s_p50"] or 0 for a in attacks)[len(attacks) // 2]
    total["slow_lifetime_s_max"] = max(a["slow_lifetime_s_max"] or 0 for a in attacks)
    total["attacker_cpu_pct"] = max(a["attacker_cpu_pct"] for a in attacks)
    return total


def table(report: dict) -> str:
    samples, sm = report["samples"], report["summary"]
    rows = ["| phase | peer fps | load (1, 5, 15 min) | machine busy % | fds max | threads max | RSS max MB | "
            "server CPU % max | GET /stats ms max |", "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for ph in report["phases"][1:]:
        ss = [s for s in samples if s["phase"] == ph["name"]]
        cell = lambda k: max((s[k] for s in ss if s[k] is not None), default="-")  # noqa: E731
        rows.append(f"| {ph['name']} ({ph['seconds']:g} s) | {ph['fps']:.1f} | {ph['load_average']} | "
                    f"{ph['machine_busy_pct']} | {cell('fds')} "
                    f"| {cell('threads')} | {cell('rss_mb')} | {cell('cpu_pct')} | {cell('stats_ms')} |")
    a = report["attack"]
    last = sm["after_last"] or {}
    back = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in (sm["back_to_baseline_after"] or {}).items())
    lines = rows + [
        "", f"peer fps: baseline {sm['baseline_fps']:.1f}, attacked {sm['attack_fps']:.1f}; ratio attacked / baseline "
        f"**{sm['fps_ratio']:.2f}** (per round {', '.join(f'{x:.2f}' for x in sm['fps_ratio_per_round'])}; "
        "target >= 0.90)",
        f"per attack round, max fds {sm['attack_round_max']['fds']}, threads {sm['attack_round_max']['threads']}, "
        f"RSS {sm['attack_round_max']['rss_mb']} MB (first baseline RSS max {sm['rss_mb_first_baseline_max']} MB)",
        f"at the end of 'after': fds {last.get('fds')}, threads {last.get('threads')}, RSS {last.get('rss_mb')} MB, "
        f"tasks {last.get('tasks')}; back to the first baseline (fds, threads) / not above the attack (RSS): {back}",
        f"attack: {a['requests_total']:g} requests in {a['seconds']:g} s ({a['offers_per_s']:g} offers/s, "
        f"{a['gets_per_s']:g} foreign-Host GETs/s, {a.get('local_per_s') or 0:g} on-device route requests/s, "
        f"{a.get('long_polls') or 0} long polls, {a.get('slow_readers') or 0} slow readers), "
        f"{a['slow_sockets']} slow sockets reopened after "
        f"{a['reconnect_s']:g} s ({a['slow_opened']:g} opened, "
        f"{a['slow_closed_by_server']:g} closed by the server, lifetime p50 {a['slow_lifetime_s_p50']} s, "
        f"max {a['slow_lifetime_s_max']} s); attacker CPU up to {a['attacker_cpu_pct']}% of one core (it shares the "
        f"{os.cpu_count()} cores with the server and the peer)",
        "answers: " + "; ".join(f"{k}: " + ", ".join(f"{c} x{n}" for c, n in v.items())
                                for k, v in a["requests"].items()),
        f"GET /stats from a real client during the attack: max {sm['series']['stats_ms']['attack']['max']} ms, "
        f"{sm['stats_failed_during_attack']} failed; errors sent to the real peer: {len(report['errors_to_peer'])}; "
        f"this process's 1 s sampler woke up to {sm['sampler_late_s_max']} s late; the server's event loop: "
        f"{report.get('event_loop')}",
        "server-held long polls max {}, on-device streams max {} (attacker had up to {} polls open); viewer offers "
        "waiting for a page max {} (attacker: {} held at once from {} addresses, up to {} open)".format(
            (sm["series"]["local_polls"]["attack"] or {}).get("max"),
            (sm["series"]["local_publishers"]["attack"] or {}).get("max"), a.get("long_polls_open_max"),
            (sm["series"]["local_views_waiting"]["attack"] or {}).get("max"), a.get("held_views"),
            a.get("view_addresses"), a.get("held_views_open_max")),
        f"server log: {report['server_log']['lines']} lines, {report['server_log']['tracebacks']} tracebacks; "
        f"exit {report['server_exit']} on SIGTERM, {report['children_left']} of its child processes left 5 s later; "
        f"processes (server, forkserver, frame workers) at most {max(x['processes'] for x in report['samples'])}",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the baseline and of the attack phase")
    ap.add_argument("--after", type=float, default=25.0, help="seconds sampled after the attack (connect timeout 20 s)")
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=1, help="baseline/attack pairs (alternating evens out other load)")
    ap.add_argument("--fps", type=float, default=30.0, help="frames per second the real peer sends")
    ap.add_argument("--frames", type=int, default=60, help="clip frames looped by the real peer")
    ap.add_argument("--background", default="blur")
    ap.add_argument("--max-peers", type=int, default=4)
    ap.add_argument("--frame-worker", choices=("process", "thread"), default=None,
                    help="serve --frame-worker (default: the server's own default, a process per publisher)")
    add_mix_args(ap)
    ap.add_argument("--json", default=None, metavar="PATH", help="write the whole report (samples included) here")
    args = ap.parse_args(argv)
    if not CLIP.exists():
        print(f"serve_soak: {CLIP} is missing (set BACKDROP_SHARED_DATA)", file=sys.stderr)
        return 2
    from backdrop.web.server import loopback_ice

    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"{machine}; load average at the start {load()}", flush=True)
    server = Server(args)
    sampler = Sampler(server)
    sampler.start()
    try:
        with loopback_ice():
            result = asyncio.run(soak(server, sampler, args))
    finally:
        try:
            sampler.stop()
        finally:
            rc, log_text, left = server.stop()
    report = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": machine,
              "clip": CLIP.name, "sent_fps": args.fps, "args": vars(args), **result,
              "attack": merge_attacks(result["attacks"]), "samples": sampler.samples,
              "event_loop": next((x["event_loop"] for x in sampler.samples if x.get("event_loop")), None),
              "server_exit": rc, "children_left": left, "server_log": {"lines": len(log_text.splitlines()),
                                                "tracebacks": log_text.count("Traceback"),
                                                "tail": log_text.splitlines()[-20:]}}
    report["summary"] = summarize(sampler.samples, result)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
