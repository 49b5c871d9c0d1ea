"""A publisher's pipeline in a process of its own (``web/frame_worker.py``, the serve default): the
same pixels as the in-process LiveProcessor, settings and their errors carried over, a failed frame
that is one frame's failure, and a worker killed outright that ends its peer and nothing else."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")

from backdrop.engine import PipelineOptions  # noqa: E402
from backdrop.errors import BackdropError  # noqa: E402
from backdrop.live import LiveProcessor, LiveSettings  # noqa: E402
from backdrop.web.client import Client  # noqa: E402
from backdrop.web.frame_worker import FrameFailed, FrameWorker  # noqa: E402
from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402
from test_web import arun, check_composite, frames, regions  # noqa: E402,F401,F811  (fixtures: real clip pixels)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split(") ", 1)[1][0] != "Z"


async def _until(pred, timeout: float) -> bool:
    """Poll without blocking the client's own event loop (its WebRTC connection lives on it)."""
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        await asyncio.sleep(0.1)
    return pred()


def test_the_worker_gives_the_in_process_pixels_and_carries_settings(frames):
    settings, options = LiveSettings(background="#00ff00"), PipelineOptions(quiet=True)
    worker = FrameWorker(settings, options=options)
    local = LiveProcessor(settings, options=options, allow_files=False)
    try:
        pid = worker.pid
        assert pid != os.getpid() and _alive(pid)
        for frame in frames[:8]:  # temporal stages too: frame after frame, the same state
            np.testing.assert_array_equal(worker(frame), local(frame))
        assert worker.update({"background": "#ff00ff", "mirror": True})["background"] == "#ff00ff"
        local.update({"background": "#ff00ff", "mirror": True})
        np.testing.assert_array_equal(worker(frames[8]), local(frames[8]))
        assert worker.state()["mirror"] is True
        with pytest.raises(BackdropError, match="unknown background 'no-such-bg'"):
            worker.update({"background": "no-such-bg"})
        assert worker.state()["background"] == "#ff00ff"  # a refused change changes nothing
        with pytest.raises(FrameFailed):  # a frame the pipeline cannot take: that frame fails ...
            worker(np.zeros((4, 4, 3, 2), np.uint8))
        np.testing.assert_array_equal(worker(frames[9]), local(frames[9]))  # ... and the next is made
    finally:
        worker.close()
        local.close()
    worker.close()  # idempotent
    assert not _alive(pid)


def _autogroup(pid: int) -> str | None:
    """The task's autogroup ("/autogroup-N nice 0"); "default" for the boot-time group, whose
    file the kernel leaves empty (CI's runner starts pytest in it: no setsid above it); None for a
    kernel without autogroup."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            fields = f.read().split()
    except OSError:
        return None
    return fields[0] if fields else "default"


def test_each_worker_has_a_session_and_so_a_cpu_share_of_its_own(frames):
    """A flood of requests must not take the pipeline's CPU turns (docs/reliability.md): each
    worker leads its own session, which is its own scheduling group where the kernel has one."""
    options = PipelineOptions(quiet=True)
    workers = [FrameWorker(LiveSettings(background="blur"), options=options) for _ in range(2)]
    try:
        pids = [w.pid for w in workers]
        assert [os.getsid(p) for p in pids] == pids  # session leaders, not in the server's session
        assert os.getsid(0) not in pids
        groups = [_autogroup(p) for p in (os.getpid(), *pids)]
        if None not in groups:
            assert len(set(groups)) == 3, groups  # ours, and one for each stream
        assert workers[0](frames[0]).shape == frames[0].shape  # and they work
    finally:
        for w in workers:
            w.close()
    assert not any(_alive(p) for p in pids)


def test_frames_cross_through_shared_memory_and_big_ones_through_the_pipe(frames):
    """The shared area is mapped by the child and its file already gone (nothing left however the
    server ends); a frame too big for it still comes back with the in-process pixels."""
    import cv2

    from backdrop.web.frame_buffer import FRAME_BYTES

    settings, options = LiveSettings(background="#00ff00"), PipelineOptions(quiet=True)
    worker = FrameWorker(settings, options=options)
    local = LiveProcessor(settings, options=options, allow_files=False)
    try:
        with open(f"/proc/{worker.pid}/maps") as f:
            mapped = [line for line in f if "backdrop-frames-" in line]
        assert mapped and all(line.rstrip().endswith("(deleted)") for line in mapped), mapped
        for frame in frames[:3]:
            np.testing.assert_array_equal(worker(frame), local(frame))
        big = cv2.resize(frames[3], (1920, 1280), interpolation=cv2.INTER_LINEAR)
        assert big.nbytes > FRAME_BYTES
        np.testing.assert_array_equal(worker(big), local(big))
        np.testing.assert_array_equal(worker(frames[4]), local(frames[4]))  # and back to the area
    finally:
        worker.close()
        local.close()


def test_a_full_shared_memory_folder_means_the_pipe_not_a_crash(small_disk, tmp_path, frames):
    """The area is had in full when made: a sparse one on a full /dev/shm was a SIGBUS that killed
    the server at the first frame written into it. Where it cannot be had, frames take the pipe."""
    from backdrop.web.frame_buffer import FRAME, SharedFrames

    assert SharedFrames.create(str(small_disk)) is None  # 2 MB cannot hold it: refused at once ...
    assert list(small_disk.iterdir()) == []  # ... and nothing is left there
    room = tmp_path / "room"
    room.mkdir()
    area = SharedFrames.create(str(room))  # with room: a frame goes in and comes out
    try:
        area.put(FRAME, frames[0])
        np.testing.assert_array_equal(area.take(FRAME, frames[0].shape), frames[0])
    finally:
        area.unlink()
        area.close()
    assert list(room.iterdir()) == []


def test_a_killed_worker_ends_its_peer_and_the_server_goes_on(frames, regions):
    cfg = ServerConfig(port=0, marker_rows=16, background="#00ff00", connect_timeout=5.0, max_peers=2)
    assert cfg.frame_worker == "process"  # the default
    with ServerThread(cfg) as srv:
        async def streaming() -> tuple[Client, int]:
            """A page that calls and gets composites; (its client, its worker's pid)."""
            c = Client(srv.url, frames, fps=15, marker=True, keep_frames=1)
            await c.connect()
            await c.wait_frames(3)
            bg, person = check_composite(c.last_frames[-1], frames, regions, (0, 255, 0))
            assert bg < 25 and person < 20, (bg, person)
            (peer,) = srv.server.publishers.values()
            assert peer.processor.pid != os.getpid() and _alive(peer.processor.pid)
            return c, peer.processor.pid

        async def main():
            c, pid = await streaming()
            os.kill(pid, signal.SIGKILL)  # out of memory, say
            assert await _until(lambda: not srv.server.publishers, 10)
            errors = [m["message"] for m in c.messages if m.get("type") == "error"]
            assert errors and "processing stopped" in errors[-1], c.messages[-3:]
            await c.close()
            again, new_pid = await streaming()  # the page calls again: a new worker
            assert new_pid != pid
            await again.close()
            assert await _until(lambda: not srv.server.publishers, 10)
            assert await _until(lambda: not _alive(new_pid), 5)  # a closed peer leaves no worker behind
        arun(main)
