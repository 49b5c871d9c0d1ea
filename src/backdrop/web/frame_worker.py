"""A publisher's frames processed in a process of their own, so the server's event loop and the
pipeline stop taking turns at one interpreter lock.

Why: under the attack mix of ``benchmarks/serve_soak.py`` the machine (2 cores) was only 80 % busy
and the real peer still lost a third of its frame rate: the event loop (aiohttp, asyncio's accept
and close, DTLS/RTP) and the peer's pipeline thread shared the GIL, so every request answered was
a frame waiting (py-spy: the loop 50 % of the server's samples under attack, 13 % alone). A shorter
switch interval did not help (docs/reliability.md). With the pipeline in a child process, the two
run on two cores and the loop's work no longer stalls a frame: the real peer kept 0.83 of its
frame rate under attack against 0.77 on a thread (8 runs and 2, in turns, one sitting). Once the
pipeline's per-frame cost was cut, process and thread came within the spread of a run (0.86 and
0.87); the process stays the default for what it isolates: a pipeline that crashes, is killed or
runs out of memory ends its own stream only.

:class:`FrameWorker` has the :class:`~backdrop.live.LiveProcessor` interface the publisher uses
(``worker(frame)``, ``update(changes)``, ``state()``, ``close()``): a frame goes through memory the
two share (``frame_buffer.py``; over the pipe as raw bytes when it is too big for it) with only its
shape on a pipe, settings over a second pipe served by a thread in the child, so decoding a new
background never holds a frame up (as :meth:`LiveProcessor.update` promises). Uploaded files stay in the peer's upload folder; the
child is told the current id -> path map with every settings change.

Children come from a ``forkserver`` that imported the pipeline once (``warm()``, at server start),
so a new peer's worker starts in a fork plus its model load, not a fresh interpreter. A child
leads a session of its own (its own share of the CPU: ``_own_session``), ignores Ctrl-C (the
server closes its peers and their workers) and ends when its pipes close, so a server killed
outright leaves no orphan working.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import BackdropError
from .frame_buffer import COMPOSITE, FRAME, SharedFrames
from .protocol import one_line

log = logging.getLogger(__name__)

FRAME_TIMEOUT = 30.0    # s for one frame's answer: a child that takes longer is taken as hung
START_TIMEOUT = 60.0    # s for the child to build its pipeline (model load) and say it is ready
CLOSE_TIMEOUT = 2.0     # s for a child to end after "stop" before it is terminated
REASON_CHARS = 300    # a child's error goes to the parent as its first line, at most this long
PRELOAD = ["backdrop.live", "backdrop.engine", "backdrop.compose.backgrounds", "backdrop.models"]


class WorkerGone(BackdropError):
    """The frame worker process stopped or stopped answering; the peer cannot go on."""


class FrameFailed(BackdropError):
    """The worker could not make this frame (its background failed, say); the peer goes on."""


def _context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def warm() -> None:
    """Start the forkserver (and its imports) now, at server start, not in the first offer."""
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


class FrameWorker:
    """A :class:`~backdrop.live.LiveProcessor` in a child process (see the module docstring).

    ``uploads()`` gives the peer's upload id -> file path map, sent along with every change;
    ``worker(frame)`` (RGB uint8 HxWx3 in, the composite RGB uint8 out) is called by the peer's
    single frame thread; ``update(changes)`` by any other thread, one at a time; ``state()``
    answers from the last settings the child confirmed, so the event loop never waits on the child.
    """

    def __init__(self, settings, *, options, upscale: int = 0,
                 uploads: Callable[[], dict[str, str]] = dict):
        self._uploads = uploads
        ctx = _context()
        self._frames, child_frames = ctx.Pipe()
        self._control, child_control = ctx.Pipe()
        self._control_lock = threading.Lock()
        self._shared = SharedFrames.create()
        self._process = ctx.Process(target=_child_main, name="backdrop-frames", daemon=True,
                                    args=(child_frames, child_control, settings, options, upscale,
                                          dict(uploads()), self._shared and self._shared.path))
        self._closed = False
        try:
            self._process.start()
            child_frames.close()
            child_control.close()
            self._state = self._answer(self._control, START_TIMEOUT, "start")
        except BaseException:
            self.close()
            raise
        finally:
            if self._shared is not None:
                self._shared.unlink()  # mapped by both now (or never will be): no file is left

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _gone(self) -> WorkerGone:
        return WorkerGone(f"the frame worker stopped (exit code {self._process.exitcode})")

    def _answer(self, conn, timeout: float, what: str) -> Any:
        """The child's reply to one request: its value, or the error it raised, raised here."""
        try:
            if not conn.poll(timeout):
                raise WorkerGone(f"the frame worker did not answer {what} in {timeout:g} s")
            kind, value = conn.recv()
        except (EOFError, OSError):
            raise self._gone() from None
        if kind == "ok":
            return value
        if kind == "refused":
            raise BackdropError(value)
        if kind == "failed":
            raise FrameFailed(value)
        raise RuntimeError(value)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = np.ascontiguousarray(frame, dtype=np.uint8)
        shared = self._shared is not None and self._shared.fits(frame.shape)
        try:
            if shared:
                self._shared.put(FRAME, frame)
            self._frames.send((frame.shape, shared))
            if not shared:
                self._frames.send_bytes(memoryview(frame).cast("B"))
        except (OSError, ValueError):
            raise self._gone() from None
        shape, composite_shared = self._answer(self._frames, FRAME_TIMEOUT, "a frame")
        if composite_shared:
            return self._shared.take(COMPOSITE, shape)
        out = np.empty(shape, np.uint8)
        try:
            self._frames.recv_bytes_into(memoryview(out).cast("B"))
        except (EOFError, OSError):
            raise self._gone() from None
        return out

    def update(self, changes: Any) -> dict[str, Any]:
        """Validate and prepare ``changes`` in the child (errors raised here, one line); the next
        frame uses them. Returns the new settings (as :meth:`state`)."""
        with self._control_lock:
            try:
                self._control.send(("update", changes, dict(self._uploads())))
            except (OSError, ValueError):
                raise self._gone() from None
            self._state = self._answer(self._control, START_TIMEOUT, "a settings change")
        return self._state

    def state(self) -> dict[str, Any]:
        return dict(self._state)

    def close(self) -> None:
        """Idempotent: ask the child to stop, then make sure it has (terminate, then kill)."""
        if self._closed:
            return
        self._closed = True
        for conn in (self._frames, self._control):
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        self._process.join(CLOSE_TIMEOUT)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(CLOSE_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(CLOSE_TIMEOUT)
        for conn in (self._frames, self._control):
            conn.close()
        if not self._process.is_alive():
            self._process.close()
        if self._shared is not None:
            self._shared.close()


# -- the child ----------------------------------------------------------------------------------------
def _own_session() -> None:
    """Lead a session of one's own, so the kernel shares the CPU between this stream's frames and
    everything else the server does, not between every thread that asks.

    Why: Linux's autogroup scheduler (on by default where the process is in the root CPU cgroup)
    puts each session in its own group and shares the CPU fairly between groups. In the server's
    session the pipeline was one thread among the event loop's, the encoder's and (in the soak)
    the attacker's and the client's: a flood of requests took its turns and a frame's round trip
    went from ~20 to ~30 ms. In a session of its own it keeps its share: under the serve soak's
    attack mix the real peer kept 0.92, 0.94 and 0.89 of its frame rate against 0.86, 0.91 and
    0.83 in the server's session (three runs each, in turns, 2026-12-07; docs/reliability.md).
    Under a CPU cgroup of its own (a container) the kernel does not do this and nothing changes.
    The child still ends when its pipes close (the server gone), and ignores Ctrl-C as before."""
    try:
        os.setsid()
    except OSError:  # already a group leader, or a sandbox that forbids it: one group as before
        pass


def _child_main(frames, control, settings, options, upscale: int, uploads: dict[str, str],
                shared_path: str | None = None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when its peers end
    _own_session()
    import cv2

    # one stream, one core: OpenCV's thread pool gives a frame of this size nothing and costs CPU
    # that the other streams and the event loop need (the serve pipeline, 512x480: 23.2 ms a frame
    # either way, 29 -> 23 ms of CPU; 720x1280: 22.3 -> 23.1 ms, 30.8 -> 23.7 ms of CPU)
    cv2.setNumThreads(1)
    from ..heap import keep_frame_buffers
    from ..live import LiveProcessor

    keep_frame_buffers()  # a forkserver child does not come through the command line's main

    known = dict(uploads)
    try:
        shared = SharedFrames.attach(shared_path)
        processor = LiveProcessor(settings, options=options, allow_files=False,
                                  resolve=lambda spec: known.get(spec, spec),
                                  known_uploads=lambda spec: spec in known, upscale=upscale)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        control.send(("refused" if isinstance(exc, BackdropError) else "error", one_line(exc, REASON_CHARS)))
        return
    control.send(("ok", processor.state()))
    thread = threading.Thread(target=_serve_control, args=(control, processor, known), daemon=True)
    thread.start()
    try:
        _serve_frames(frames, processor, shared)
    finally:
        processor.close()


def _serve_control(control, processor, known: dict[str, str]) -> None:
    while True:
        try:
            message = control.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        _, changes, uploads = message
        known.clear()
        known.update(uploads)
        try:
            processor.update(changes)
            reply = ("ok", processor.state())
        except BackdropError as exc:
            reply = ("refused", one_line(exc, REASON_CHARS))
        except Exception as exc:  # noqa: BLE001 - a bug: the parent logs it as internal
            reply = ("error", f"{type(exc).__name__}: {one_line(exc, REASON_CHARS)}")
        try:
            control.send(reply)
        except (OSError, ValueError):
            return


def _serve_frames(frames, processor, shared: SharedFrames | None) -> None:
    while True:
        try:
            message = frames.recv()
            if message is None:
                return
            shape, in_shared = message
            if in_shared:  # a copy: the pipeline may keep a frame (the one-frame delay) past this turn
                frame = shared.take(FRAME, shape)
            else:
                frame = np.empty(shape, np.uint8)
                frames.recv_bytes_into(memoryview(frame).cast("B"))
        except (EOFError, OSError):
            return
        try:
            out = np.ascontiguousarray(processor(frame), dtype=np.uint8)
        except Exception as exc:  # noqa: BLE001 - the parent shows the last good frame and says why
            try:
                frames.send(("failed", one_line(exc, REASON_CHARS)))
            except (OSError, ValueError):
                return
            continue
        try:
            if shared is not None and shared.fits(out.shape):
                shared.put(COMPOSITE, out)
                frames.send(("ok", (out.shape, True)))
            else:
                frames.send(("ok", (out.shape, False)))
                frames.send_bytes(memoryview(out).cast("B"))
        except (OSError, ValueError):
            return
