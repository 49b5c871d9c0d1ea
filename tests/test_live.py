"""The live loop end to end: real frames from a file-backed camera, composited, into a fake sink;
frame order, the drop-oldest policy (made deterministic with gates), pausing, and every way of
changing settings while running (keys, HTTP/JSON, a watched file)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from backdrop.errors import BackdropError, OptionError
from backdrop.io.camera import FileCamera
from backdrop.io.virtualcam import FakeSink
from backdrop.live import (ConfigWatcher, DropOldestQueue, LiveLoop, LiveProcessor, LiveSettings, apply_changes,
                           key_changes, open_control_server)
from backdrop.live.controls import wait_until
from backdrop.live.scheduler import Closed, Empty
from backdrop.engine import Pipeline
from conftest import shared_path

CLIP = ("clips", "outdoor-seated-640x360.mp4")


@pytest.fixture(scope="module")
def pipeline_factory(segmenter):
    """Pipelines share the session's model (no reload per test), each with its own state."""
    def make(background="#00ff00"):
        return Pipeline(background=background, segmenter=segmenter, live=True)
    return make


def colour_distance(img: np.ndarray, rgb) -> np.ndarray:
    return np.abs(img.astype(np.int16) - np.array(rgb, np.int16)).max(axis=-1)


# -- the queue --------------------------------------------------------------------------------------------
def test_drop_oldest_queue_keeps_newest_and_counts():
    dropped = []
    q = DropOldestQueue(2, on_drop=dropped.append)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and dropped == [0, 1, 2]
    assert [q.get(), q.get()] == [3, 4]
    with pytest.raises(Empty):
        q.get(timeout=0.01)
    q.put(9)
    q.close()
    assert q.put(10) == 10  # refused after close
    assert q.get() == 9
    with pytest.raises(Closed):
        q.get(timeout=0.01)


def test_drop_oldest_queue_never_blocks_the_producer():
    q = DropOldestQueue(1)
    t0 = time.perf_counter()
    for i in range(10000):
        q.put(i)
    assert time.perf_counter() - t0 < 1.0
    assert q.get() == 9999 and len(q) == 0


# -- the loop, end to end with real frames ------------------------------------------------------------------
def test_camera_loop_end_to_end_real_frames(shared, pipeline_factory):
    """Fake camera (real clip, as fast as it decodes) -> LiveProcessor -> fake sink: every frame
    that comes out is a real composite at the camera's size, in capture order."""
    cam = FileCamera(shared_path(*CLIP), realtime=False, limit=24)
    proc = LiveProcessor(LiveSettings(background="#00ff00"), pipeline=pipeline_factory("#00ff00"))
    sink = FakeSink()
    loop = LiveLoop(cam, proc, sink, queue_size=64)  # big queues: nothing may be dropped here
    stats = loop.run()
    cam.close()
    assert stats["captured"] == 24 and stats["output"] == 24
    assert sink.seqs == list(range(24))
    ref = FileCamera(shared_path(*CLIP), realtime=False, limit=24)
    for i, out in enumerate(sink.frames):
        frame = ref.read()
        assert out.shape == frame.shape and out.dtype == np.uint8
        matte = proc.pipeline.segmenter(frame)
        bg, person = matte < 0.02, matte > 0.98
        assert bg.mean() > 0.2 and person.mean() > 0.05, "the clip has a person and a background"
        # background became the colour; the person stayed the camera's pixels
        assert np.median(colour_distance(out[bg], (0, 255, 0))) <= 2
        assert np.median(np.abs(out[person].astype(int) - frame[person].astype(int))) <= 2
    ref.close()


def test_drop_oldest_is_deterministic_with_a_slow_processor():
    """A processor stuck on frame 0 while the camera delivers 1..5: with one slot, only frame 5
    survives; 1-4 are dropped (the oldest first), and the output is 0, 5 - never 1, 2, ..."""
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(6)]
    first_taken, camera_done = threading.Event(), threading.Event()

    class GatedCamera:
        def __init__(self):
            self.i = 0

        def read(self):
            if self.i == len(frames):
                camera_done.set()
                return None
            if self.i == 1:
                assert first_taken.wait(5)  # frame 0 is in the processor before 1 is captured
            self.i += 1
            return frames[self.i - 1]

        def close(self):
            pass

    sink = FakeSink()

    def slow_process(img):
        if img[0, 0, 0] == 0:
            first_taken.set()
            assert camera_done.wait(5)  # "slow": the camera finishes while frame 0 is processed
        else:  # let the output stage take frame 0 first, so only the input queue drops here
            assert wait_until(lambda: len(sink.seqs) == 1, 5)
        return img

    loop = LiveLoop(GatedCamera(), slow_process, sink, queue_size=1)
    stats = loop.run()
    assert sink.seqs == [0, 5]
    assert [int(f[0, 0, 0]) for f in sink.frames] == [0, 5]
    assert stats["dropped_before_processing"] == 4 and stats["processed"] == 2


def test_slow_processor_does_not_build_latency(shared):
    """Real-time camera at 30 fps, processing at ~12 fps: frames are dropped, but latency stays
    about one processing time (it would grow every second with an unbounded queue)."""
    cam = FileCamera(shared_path(*CLIP), fps=30, realtime=True, limit=45)

    def slow(img):
        time.sleep(0.08)
        return img

    sink = FakeSink(keep_images=False)
    stats = LiveLoop(cam, slow, sink, queue_size=1).run()
    cam.close()
    assert sink.seqs == sorted(sink.seqs) and len(set(sink.seqs)) == len(sink.seqs)
    assert stats["dropped_before_processing"] + cam.skipped > 10
    late = sink.latencies[len(sink.latencies) // 2:]
    assert max(late) < 0.5, f"latency grew to {max(late):.2f} s"
    # the second half is no later than the first half: nothing accumulates
    assert np.median(late) < np.median(sink.latencies[: len(sink.latencies) // 2]) + 0.1


def test_inference_pauses_while_nobody_reads():
    """Frames captured while the sink says nobody reads are not processed; when a reader
    appears, processing resumes with fresh frames."""
    reader = threading.Event()
    calls = []

    class Cam:
        def __init__(self):
            self.i = 0

        def read(self):
            time.sleep(0.002)
            if self.i == 200:
                return None
            if self.i == 60:
                reader.set()
            self.i += 1
            return np.full((8, 8, 3), self.i - 1, np.uint8)

        def close(self):
            pass

    def process(img):
        calls.append(int(img[0, 0, 0]))
        return img

    sink = FakeSink(keep_images=False)
    stats = LiveLoop(Cam(), process, sink, active=lambda: reader.is_set(), idle_repeat=0.0).run()
    assert stats["paused"] > 20  # seen while nobody read, and not processed
    assert stats["processed"] == len(calls) > 50
    assert min(calls) >= 55  # nothing from the unwatched time was processed later


def test_errors_in_a_stage_surface_in_run():
    class Broken:
        def read(self):
            raise BackdropError("camera 7 stopped delivering frames (unplugged?)")

        def close(self):
            pass

    with pytest.raises(BackdropError, match="unplugged"):
        LiveLoop(Broken(), lambda x: x, FakeSink()).run()


# -- settings ---------------------------------------------------------------------------------------------
def test_apply_changes_validates_every_field():
    s = LiveSettings()
    assert apply_changes(s, {"colour": "#F0A"}).background == "#ff00aa"
    assert apply_changes(s, {"color": "green"}).background == "#00b140"
    assert apply_changes(s, {"blur": 20}).background == "blur:20"
    assert apply_changes(s, {"effect": False, "mirror": True}) == LiveSettings(effect=False, mirror=True)
    assert apply_changes(s, {"background": "blur:3"}).background == "blur:3"
    bad = [{"effect": "yes"}, {"blur": 0}, {"blur": 1e9}, {"blur": "nan"}, {"blur": True}, {"colour": "#12"},
           {"colour": 5}, {"background": "transparent"}, {"nonsense": 1}, {"model": "../../etc/passwd"},
           {"background": "/etc/passwd"}, {"image": "x.png"}, [], "effect"]
    for changes in bad:
        with pytest.raises(OptionError) as err:
            apply_changes(s, changes, allow_files=False)
        assert "\n" not in str(err.value)


def test_settings_change_takes_effect_on_the_next_frame(shared, pipeline_factory):
    cam = FileCamera(shared_path(*CLIP), realtime=False)
    frame = cam.read()
    cam.close()
    proc = LiveProcessor(LiveSettings(background="#00ff00"), pipeline=pipeline_factory("#00ff00"))
    matte = proc.pipeline.segmenter(frame)
    bg = matte < 0.02
    assert np.median(colour_distance(proc(frame)[bg], (0, 255, 0))) <= 2
    proc.update({"colour": "#0000ff"})
    assert np.median(colour_distance(proc(frame)[bg], (0, 0, 255))) <= 2
    proc.update({"effect": False})
    assert np.array_equal(proc(frame), frame)
    proc.update({"effect": True, "mirror": True, "blur": 8})
    out = proc(frame)
    assert proc.settings.background == "blur:8"
    assert np.median(colour_distance(out[bg[:, ::-1]], (0, 0, 255))) > 30  # blurred room, not blue
    assert out.shape == frame.shape
    with pytest.raises(BackdropError):
        proc.update({"image": "/no/such/file.png"})
    assert proc.target.background == "blur:8"  # a failed change leaves the settings alone


def test_preview_keys():
    s = LiveSettings(background="blur:12")
    assert key_changes("q", s) == "quit" and key_changes("\x1b", s) == "quit"
    assert key_changes(" ", s) == {"effect": False}
    assert key_changes("+", s)["blur"] == 14 and key_changes("-", s)["blur"] == 10
    assert key_changes("c", s)["colour"] == "#00b140"
    assert key_changes("c", LiveSettings(background="#00b140"))["colour"] == "#0047bb"
    assert key_changes("m", s) == {"mirror": True}
    assert key_changes("z", s) is None


def _http(url, body=None, *, ctype="application/json", host=None, method=None):
    req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
    if body is not None and ctype:
        req.add_header("Content-Type", ctype)
    if host:
        req.add_header("Host", host)
    try:
        with urllib.request.urlopen(req, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_http_control_endpoint(pipeline_factory):
    proc = LiveProcessor(LiveSettings(background="#00ff00"), pipeline=pipeline_factory())
    ctl = open_control_server(proc, 0, stats=lambda: {"fps": 1.0})
    try:
        code, body = _http(ctl.url)
        assert code == 200 and body["settings"]["colour"] == "#00ff00" and body["stats"]["fps"] == 1.0
        code, body = _http(ctl.url, json.dumps({"blur": 5, "effect": False}).encode())
        assert code == 200 and body["settings"]["background"] == "blur:5" and body["settings"]["effect"] is False
        assert proc.target.background == "blur:5"
        assert _http(ctl.url, b"{nope")[0] == 400
        code, body = _http(ctl.url, b'{"blur": -1}')
        assert code == 400 and "blur" in body["error"]
        assert _http(ctl.url, b'{"blur": 3}', ctype="text/plain")[0] == 415  # no cross-site form posts
        assert _http(ctl.url, b'{"blur": 3}', host="evil.example:80")[0] == 403  # DNS rebinding
        assert _http(ctl.url, b"x" * 70000)[0] == 413
        assert _http(ctl.url.replace("/settings", "/other"))[0] == 404
        assert proc.target.background == "blur:5"
    finally:
        ctl.close()
    with pytest.raises(OptionError, match="control port"):
        busy = open_control_server(proc, 0)
        try:
            open_control_server(proc, busy.port)
        finally:
            busy.close()


def test_watched_config_file(tmp_path, pipeline_factory, caplog):
    proc = LiveProcessor(LiveSettings(background="#00ff00"), pipeline=pipeline_factory())
    cfg = tmp_path / "live.json"
    watcher = ConfigWatcher(cfg, proc, interval=0.05).start()
    try:
        cfg.write_text(json.dumps({"colour": "#123456"}))
        assert wait_until(lambda: proc.target.background == "#123456", 5)
        time.sleep(0.05)
        cfg.write_text('{"colour": "#12')  # half-saved by an editor: ignored, stream goes on
        assert wait_until(lambda: watcher.errors >= 1, 5)
        assert proc.target.background == "#123456"
        cfg.write_text(json.dumps({"effect": False, "blur": 30}))
        assert wait_until(lambda: proc.target == LiveSettings(effect=False, background="blur:30"), 5)
    finally:
        watcher.close()


def test_live_processor_keeps_memory_flat(pipeline_factory, monkeypatch):
    """The Pipeline's stage timer keeps every sample; a live stream trims it regularly."""
    import backdrop.live.processor as processor

    monkeypatch.setattr(processor, "TIMER_RESET_FRAMES", 20)
    proc = LiveProcessor(LiveSettings(background="#00ff00"), pipeline=pipeline_factory())
    frame = np.zeros((64, 64, 3), np.uint8)
    for _ in range(65):
        proc(frame)
    assert max(len(v) for v in proc.pipeline.timer.samples.values()) <= 20 * 3


def test_slide_control_advances_presenter_slides(tmp_path):
    """Presenter mode live: a control message (or the n/p keys) moves to the next slide."""
    import cv2
    import numpy as np

    from backdrop.compose.backgrounds.presenter import PresenterBackground
    from backdrop.errors import OptionError
    from backdrop.live import LiveProcessor, key_changes
    from backdrop.engine import Pipeline, PipelineOptions

    for i, colour in enumerate([(0, 0, 255), (255, 0, 0)]):  # BGR on disk: red, then blue
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((90, 160, 3), colour, np.uint8))
    bg = PresenterBackground(tmp_path, "corner")
    pipe = Pipeline(background=bg, options=PipelineOptions.raw(), live=True)
    proc = LiveProcessor(pipeline=pipe)
    frame = np.full((90, 160, 3), 128, np.uint8)
    assert proc(frame)[5, 80, 0] > 200  # slide 1 is red (top centre: never the person)
    proc.update(key_changes("n", proc.settings))
    assert proc(frame)[5, 80, 2] > 200  # slide 2 is blue
    proc.update({"slide": "prev"})
    assert proc(frame)[5, 80, 0] > 200
    with pytest.raises(OptionError):
        proc.update({"slide": "sideways"})
