"""Ray itself: importing it, reaching a cluster, a private local instance, and SIGTERM around it.

Everything that knows Ray's quirks is here, so the driver reads as scheduling only:

* **Embedded Ray by default, a cluster on request.** Without an address a small private Ray
  instance starts (``address="local"``: never attaches to someone else's ``ray start``), no
  dashboard, worker logs not forwarded, listening on loopback only, its session folder removed
  afterwards. ``HOST:PORT`` attaches as a driver to a running cluster; ``ray://HOST:PORT`` goes
  through Ray Client (needs ``ray[client]``). An address nothing listens on fails in seconds
  (:func:`check_reachable`) instead of after Ray's own 20-30 s of retries.
* **SIGTERM is deferred while the driver waits inside Ray's C++ calls** (:class:`DeferredSigterm`)
  and re-raised from Python, so the usual clean-up (cancel, remove temp files) runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from typing import Any

from ..errors import BackdropError, install_hint


class ClusterError(BackdropError):
    """Ray is missing, or the cluster cannot be reached."""



_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ClusterError(f"backdrop batch needs Ray: {install_hint('cluster')}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, *, num_cpus: int = 2):
    """Connect to (or start) Ray for the duration; reuse a session the caller already opened.

    ``ray.init`` replaces the SIGTERM handler; ours (which turns SIGTERM into a clean exit
    with partial outputs removed) is put back straight after.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    handler = signal.getsignal(signal.SIGTERM)
    private_tmp = None
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                              "include_dashboard": False}
    if address:
        check_reachable(address)
        if address.startswith("ray://"):
            try:
                import grpc  # noqa: F401
            except ImportError:
                raise ClusterError("ray:// addresses need the Ray client: pip install 'ray[client]'") from None
            kwargs.pop("include_dashboard")
        target = address
    else:
        target = "local"
        # a private session folder, removed afterwards: no logs pile up in /tmp/ray, and no
        # other program's plain ray.init() finds this instance as "the latest cluster"
        private_tmp = tempfile.mkdtemp(prefix="backdrop-ray-")
        kwargs.update(num_cpus=int(num_cpus), object_store_memory=96 * 1024 * 1024, _temp_dir=private_tmp)
    saved_env = os.environ.get(_LOOPBACK_ENV)
    if not address:
        # Ray's own switch (meant for laptops) that makes every service of the embedded
        # instance listen on 127.0.0.1 only: nothing off this machine can reach it
        os.environ[_LOOPBACK_ENV] = "0"
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        if private_tmp:
            shutil.rmtree(private_tmp, ignore_errors=True)
        raise ClusterError(f"cannot connect to {where}: {first}") from None
    finally:
        if not address:
            if saved_env is None:
                os.environ.pop(_LOOPBACK_ENV, None)
            else:
                os.environ[_LOOPBACK_ENV] = saved_env
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)
    try:
        yield ray
    finally:
        with contextlib.suppress(Exception):
            ray.shutdown()
        if private_tmp:
            shutil.rmtree(private_tmp, ignore_errors=True)
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, handler if handler is not None else signal.SIG_DFL)


class DeferredSigterm:
    """Turn SIGTERM into a flag while the driver sits in Ray's C++ calls, re-raise it from Python.

    A Python signal handler that raises (the CLI turns SIGTERM into an exception so cleanup
    runs) inside ``ray.wait`` surfaces as ``SystemError: ... returned a result with an
    exception set`` and a traceback. The flag is checked at least once a second; then the
    previous handler runs from plain Python code (or ``SystemExit(143)`` without one), and the
    usual cleanup (cancel tasks, remove temp files) follows.
    """

    def __init__(self):
        self.hit = False
        self.old = None
        self.installed = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.old = signal.getsignal(signal.SIGTERM)
            if self.old is not signal.SIG_IGN:
                signal.signal(signal.SIGTERM, self._on)
                self.installed = True
        return self

    def _on(self, signum, frame) -> None:
        self.hit = True

    def check(self) -> None:
        if not self.hit:
            return
        self.hit = False
        self._restore()
        if callable(self.old):
            self.old(signal.SIGTERM, None)
        raise SystemExit(128 + signal.SIGTERM)

    def _restore(self) -> None:
        if self.installed:
            signal.signal(signal.SIGTERM, self.old if self.old is not None else signal.SIG_DFL)
            self.installed = False

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.check()  # a SIGTERM during Ray's shutdown is not lost
        self._restore()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast on an address nothing listens on: Ray itself retries for 20-30 s first."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise ClusterError(f"--address must be HOST:PORT or ray://HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ClusterError(f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}") from None


def node_cpus(ray) -> list[float]:
    """The CPUs of each alive node of the connected session (the whole cluster's total when
    Ray cannot list its nodes)."""
    try:
        cpus = [float((n.get("Resources") or {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive", True)]
    except Exception:  # noqa: BLE001 - older Ray / a client without node listing
        cpus = []
    if not cpus:
        with contextlib.suppress(Exception):
            cpus = [float(ray.cluster_resources().get("CPU", 0))]
    return cpus


def check_resources(ray, cpus_per_task: int, where: str = "the Ray cluster") -> None:
    """Refuse a batch whose tasks no node can ever run: Ray would queue them forever, silently.

    A task's CPUs must fit on one node, so the largest node decides (the stitch task needs 1).
    """
    cpus = node_cpus(ray)
    if not cpus:
        return  # nothing reported: let Ray decide
    need = max(1, int(cpus_per_task))
    most = max(cpus)
    if most < need:
        raise ClusterError(f"--cpus-per-task {need} can never run: the largest node of {where} has "
                           f"{most:g} CPUs (lower --cpus-per-task or add bigger nodes)")


def ray_reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc).strip().splitlines()
    if "WorkerCrashed" in name or "NodeDied" in name or "OutOfMemory" in name:
        return f"worker died and the retries ran out ({name})"
    return f"{name}: {text[0][:200] if text else ''}"
