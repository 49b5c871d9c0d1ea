"""Whether anybody reads a video device (Linux): :func:`device_readers` and :class:`ReaderWatch`.

Another process holding ``/dev/videoN`` open is found through ``/proc``; the live loop uses that
to pause inference while nobody watches the virtual camera. Other platforms do not tell (None).
Exists apart from the sink because it is plain ``/proc`` scanning, testable without a device.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .threaded import Poller

log = logging.getLogger(__name__)


def device_readers(device: str | os.PathLike, proc: str | os.PathLike = "/proc") -> int | None:
    """How many *other* processes hold ``device`` open, or None when the platform cannot tell.

    Only processes whose ``/proc/PID/fd`` this user may read are seen (the conferencing app runs
    as the same user, so it is). Used to pause inference while nobody watches.
    """
    if not sys.platform.startswith("linux"):
        return None
    proc = Path(proc)
    if not proc.is_dir():
        return None
    try:
        target = os.stat(device)
    except OSError:
        return None
    me = os.getpid()
    count = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        fd_dir = entry / "fd"
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(fd)
            except OSError:
                continue
            if st.st_ino == target.st_ino and st.st_dev == target.st_dev and st.st_rdev == target.st_rdev:
                count += 1
                break
    return count


class ReaderWatch(Poller):
    """Polls :func:`device_readers` in a background thread (a /proc scan costs milliseconds,
    too much for every frame). ``active`` is True, False, or None when unknown."""

    name = "backdrop-readers"

    def __init__(self, device: str, interval: float = 1.0):
        self.device = device
        self.active: bool | None = None
        super().__init__(interval)

    def poll(self) -> None:
        n = device_readers(self.device)
        was = self.active
        self.active = None if n is None else n > 0
        if was is not None and was != self.active:
            log.info("virtual camera %s: %s", self.device,
                     "a reader appeared, processing resumed" if self.active else "no reader, inference paused")
