"""A local Ray head started as a user starts one (``ray start --head --block``), for the tests
that reach an existing cluster by address; and Ray's own start-up races, retried once."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Head:
    addresses: list[str]  # HOST:PORT (a driver), then ray://HOST:PORT where ray[client] is installed
    env: dict[str, str]  # what a driver needs to reach it (the token)
    temp: str

    def raylet_log(self) -> Path:
        return Path(self.temp) / "session_latest" / "logs" / "raylet.out"

    def raylet_started(self) -> bool:
        log = self.raylet_log()
        return log.is_file() and "started. Raylet consists of" in log.read_text(errors="replace")

    def raylet_errors(self) -> str:
        """The raylet's warnings and errors, for an assertion's message (Ray's own diagnosis)."""
        log = self.raylet_log()
        if not log.is_file():
            return "(no raylet log)"
        lines = log.read_text(errors="replace").splitlines()
        return "\n".join([line for line in lines if " E " in line or " W " in line][-15:])


def ray_transient(proc: subprocess.CompletedProcess) -> bool:
    """Ray's own start-up races on a busy 2-core machine, worth one more try: Ray Client's
    per-client server failing to start, and a driver the raylet hangs up on while it registers
    (seen once in CI: exit 1 from Ray's C++ core before any of Backdrop's code ran)."""
    return ((proc.returncode == 2 and "Initialization failure from server" in proc.stderr)
            or (proc.returncode != 0 and "Failed to register worker to Raylet" in proc.stderr))


@contextmanager
def ray_head(num_cpus: int = 2, deadline_s: float = 90.0):
    """Token auth on, loopback only; stopped (and its temp folder removed) on the way out."""
    ray = Path(sys.executable).parent / "ray"
    port, client_port = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="bdray")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(24).hex(),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's switch for loopback-only services
           # the client server starts a Python process per client; on a busy 2-core machine
           # that can take longer than Ray's default 30 s
           "RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S": "120"}
    head_log = open(Path(temp) / "head.log", "wb")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         f"--num-cpus={num_cpus}", "--include-dashboard=false", f"--ray-client-server-port={client_port}",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=head_log, env=env, start_new_session=True)
    has_client = importlib.util.find_spec("grpc") is not None  # Ray Client (ray://) needs ray[client]
    info = Head([f"127.0.0.1:{port}"] + ([f"ray://127.0.0.1:{client_port}"] if has_client else []), env, temp)
    try:
        deadline = time.time() + deadline_s
        waiting = [port] + ([client_port] if has_client else [])
        while waiting:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", waiting[0])) == 0:
                    waiting.pop(0)
                    continue
            assert head.poll() is None, (Path(temp) / "head.log").read_text(errors="replace")[-2000:]
            assert time.time() < deadline, f"the Ray head did not open port {waiting[0]}"
            time.sleep(0.3)
        # the GCS and client ports open before the raylet starts: a driver that comes too early
        # can be turned away, so wait for the raylet's own line too
        while not info.raylet_started() and time.time() < deadline:
            time.sleep(0.3)
        yield info
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=10)
        head_log.close()
        shutil.rmtree(temp, ignore_errors=True)
