"""The server side of ``benchmarks/serve_soak.py``: ``backdrop serve`` as a subprocess, and what it
holds, sampled every second: open fds, threads, RSS and CPU of the server *and every process under
it* (its forkserver and the publishers' frame workers, ``web/frame_worker.py``: the pipeline runs
there since the soak showed the event loop and the pipeline taking turns at the GIL), the machine's
busy share, and ``GET /stats`` timed as a real client does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def machine_cpu() -> list[int]:
    """The machine's CPU jiffies (/proc/stat): user nice system idle iowait irq softirq steal."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def busy(a: list[int], b: list[int]) -> tuple[float, float]:
    """(% of all cores busy, % stolen by the hypervisor) between two machine_cpu() readings."""
    d = [y - x for x, y in zip(a, b)]
    total = sum(d) or 1
    return round(100 * (total - d[3] - d[4]) / total, 1), round(100 * d[7] / total, 1)


def proc_stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name: state, ppid, ... (``man 5 proc``)."""
    return Path("/proc", str(pid), "stat").read_text().rsplit(")", 1)[1].split()


# -- the server and what it holds -------------------------------------------------------------------------
class Server:
    """``backdrop serve`` in its own process; its log goes to a file (a pipe nobody reads would stall it)."""

    def __init__(self, args):
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-soak-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "backdrop", "serve", "--port", "0", "-b", args.background,
               "--max-peers", str(args.max_peers)]
        if args.frame_worker:  # (left out by default, so the soak also runs against code without it)
            cmd += ["--frame-worker", args.frame_worker]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.pid = self.proc.pid
        self.url = ""
        end = time.monotonic() + 120
        while not self.url:
            m = re.search(r"open (http://127\.0\.0\.1:\d+/)", Path(self.log.name).read_text())
            if m:
                self.url = m.group(1)
            elif self.proc.poll() is not None or time.monotonic() > end:
                self.proc.kill()
                self.proc.wait()
                text = Path(self.log.name).read_text()
                os.unlink(self.log.name)
                raise RuntimeError("serve did not start: " + text[-2000:])
            else:
                time.sleep(0.1)

    def tree(self) -> list[int]:
        """The server and every process under it (its forkserver and the publishers' frame workers):
        what the server holds is theirs together."""
        parents: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    parents[int(entry)] = int(proc_stat(int(entry))[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, todo = [self.pid], [self.pid]
        while todo:
            parent = todo.pop()
            kids = [pid for pid, pp in parents.items() if pp == parent]
            found += kids
            todo += kids
        return found

    def sample(self) -> dict:
        total = {"fds": 0, "threads": 0, "rss_mb": 0.0, "cpu_s": 0.0, "processes": 0}
        for pid in self.tree():
            p = f"/proc/{pid}"
            try:
                status = Path(p, "status").read_text()
                stat = proc_stat(pid)
                fds = len(os.listdir(f"{p}/fd"))
            except OSError:  # ended between the listing and the read
                if pid == self.pid:
                    raise
                continue
            if stat[0] == "Z" and pid != self.pid:  # a worker that ended, not yet reaped: holds nothing
                continue
            field = lambda name: int(re.search(rf"^{name}:\s+(\d+)", status, re.M).group(1))  # noqa: E731
            total["fds"] += fds
            total["threads"] += field("Threads")
            total["rss_mb"] += field("VmRSS") / 1024
            total["cpu_s"] += (int(stat[11]) + int(stat[12])) / TICK
            total["processes"] += 1
        total["rss_mb"] = round(total["rss_mb"], 1)
        return total

    def stats(self) -> tuple[dict | None, float | None]:
        """``GET /stats`` as a real client does; (body, seconds) or (None, None) when it fails."""
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(self.url + "stats", timeout=5) as r:
                return json.loads(r.read()), time.perf_counter() - t0
        except Exception:
            return None, None

    def stop(self) -> tuple[int | None, str, int]:
        """SIGTERM; (exit code, log, how many of its child processes were still running 5 s later)."""
        children = self.tree()[1:]
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = None
        end = time.monotonic() + 5
        left = children
        while left and time.monotonic() < end:
            time.sleep(0.1)
            left = [pid for pid in left if _running(pid)]
        text = Path(self.log.name).read_text()
        os.unlink(self.log.name)
        return rc, text, len(left)


def _running(pid: int) -> bool:
    try:
        return proc_stat(pid)[0] != "Z"  # a zombie has ended; only its parent has not reaped it
    except OSError:
        return False


class Sampler(threading.Thread):
    """Every second: the server's fds, threads, RSS, CPU, asyncio tasks and /stats time, by phase."""

    def __init__(self, server: Server):
        super().__init__(daemon=True, name="sampler")
        self.server, self.phase, self.samples = server, "warm-up", []
        self.t0 = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        last = None
        while not self._halt.wait(1.0 - (time.monotonic() - self.t0) % 1.0):
            try:
                s = self.server.sample()
            except (OSError, AttributeError):
                break
            body, took = self.server.stats()
            now = time.monotonic()
            # (a frame worker that ended takes its CPU seconds with it: never below zero)
            cpu = None if last is None else round(max(0.0, 100 * (s["cpu_s"] - last[1]) / (now - last[0])), 1)
            last = (now, s["cpu_s"])
            self.samples.append({"t_s": round(now - self.t0, 1), "phase": self.phase, "fds": s["fds"],
                                 "processes": s["processes"],
                                 "threads": s["threads"], "rss_mb": s["rss_mb"], "cpu_pct": cpu,
                                 "tasks": body["tasks"] if body else None,
                                 "publishers": body["publishers"] if body else None,
                                 "local_polls": body.get("local_polls") if body else None,
                                 "local_publishers": body.get("local_publishers") if body else None,
                                 "local_views_waiting": body.get("local_views_waiting") if body else None,
                                 "event_loop": body.get("event_loop") if body else None,
                                 "stats_ms": round(took * 1000, 1) if took is not None else None})

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


# -- the real peer and the phases ---------------------------------------------------------------------------
