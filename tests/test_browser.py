"""A real browser end to end: headless Chromium's fake camera plays a real clip of a person
(.y4m), the page sends it to ``backdrop serve`` over WebRTC, and pixels of the processed <video>
are read back through a canvas: the background must become the chosen colour while the person
stays the person, a data-channel control message must change it, the viewer page must show the
same stream, and switching the effect off must bring the room back.

Needs Debian's ``chromium`` and the Python ``playwright`` package (``.ci/install-browser``);
skipped with the reason when either is missing. Playwright drives /usr/bin/chromium directly
(``executable_path``); no browser is downloaded.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import shared_path

pytestmark = pytest.mark.browser

CLIP = ("clips", "talking-room-512x480.mp4")
N_FRAMES = 40
SAMPLES = 60
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--mute-audio",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate",
]
READ_PIXELS = """([id, points]) => {
  const v = document.getElementById(id);
  if (!v || !v.videoWidth || v.readyState < 2) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  const ctx = c.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(v, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  return points.map(([x, y]) => {
    const px = Math.min(c.width - 1, Math.floor(x * c.width));
    const py = Math.min(c.height - 1, Math.floor(y * c.height));
    const i = (py * c.width + px) * 4;
    return [d[i], d[i + 1], d[i + 2]];
  });
}"""


def find_chromium() -> str | None:
    for cand in (os.environ.get("BACKDROP_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser")):
        if cand and Path(cand).is_file() and os.access(cand, os.X_OK):
            return cand
    return None


@pytest.fixture(scope="module")
def browser_bits():
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (run .ci/install-browser)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (run .ci/install-browser)")
    pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")
    return chromium, sync_playwright


@pytest.fixture(scope="module")
def fake_camera(tmp_path_factory, segmenter):
    """The clip as .y4m for Chromium, and sample points (normalised x, y) that are background in
    every frame and person in every frame, away from the edges."""
    from backdrop.io.camera import write_y4m
    from backdrop.io.video import VideoReader

    frames = [f.image for _, f in zip(range(N_FRAMES), VideoReader(shared_path(*CLIP)))]
    y4m = write_y4m(tmp_path_factory.mktemp("cam") / "clip.y4m", frames, fps=30)
    mattes = np.stack([segmenter(f) for f in frames])
    kernel = np.ones((21, 21), np.uint8)
    bg = cv2.erode((mattes.max(axis=0) < 0.02).astype(np.uint8), kernel).astype(bool)
    person = cv2.erode((mattes.min(axis=0) > 0.98).astype(np.uint8), kernel).astype(bool)
    assert bg.mean() > 0.1 and person.mean() > 0.03, "the clip must show a person in a room"
    h, w = bg.shape
    rng = np.random.default_rng(5)

    def points(mask):
        ys, xs = np.nonzero(mask)
        pick = rng.choice(len(xs), size=min(SAMPLES, len(xs)), replace=False)
        return [[(xs[i] + 0.5) / w, (ys[i] + 0.5) / h] for i in pick]

    return y4m, points(bg), points(person)


def distances(pixels, rgb) -> np.ndarray:
    return np.abs(np.asarray(pixels, int) - np.asarray(rgb)).max(axis=1)


def poll(page, video_id, points, ok, timeout=20.0):
    """Read pixels until ``ok(pixels)`` holds (a new colour needs a few frames to arrive)."""
    end = time.monotonic() + timeout
    pixels = None
    while time.monotonic() < end:
        pixels = page.evaluate(READ_PIXELS, [video_id, points])
        if pixels is not None and ok(np.asarray(pixels, int)):
            return np.asarray(pixels, int)
        time.sleep(0.2)
    return None if pixels is None else np.asarray(pixels, int)


def test_browser_background_replaced_and_controlled(browser_bits, fake_camera, tmp_path):
    from backdrop.web.server import ServerConfig, ServerThread

    chromium, sync_playwright = browser_bits
    y4m, bg_pts, person_pts = fake_camera
    t_start = time.monotonic()
    with ServerThread(ServerConfig(port=0, background="blur")) as srv, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True, bypass_csp=True,
            args=[*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={y4m}"])
        try:
            page = ctx.new_page()
            logs = []
            page.on("console", lambda m: logs.append(m.text))
            page.goto(srv.url + "?on=server&w=512&h=480")
            page.wait_for_function("window.backdrop && window.backdrop.connected && window.backdrop.serverStats "
                                   "&& window.backdrop.serverStats.processed > 5", timeout=45000)

            # 1. the colour picker (UI -> data channel): the room turns magenta, the person does not
            magenta = (255, 0, 255)
            page.locator("#colour").fill("#ff00ff")
            page.wait_for_function("window.backdrop.settings.colour === '#ff00ff'", timeout=10000)
            bg = poll(page, "processed", bg_pts, lambda p: (distances(p, magenta) < 60).mean() > 0.9)
            person = page.evaluate(READ_PIXELS, ["processed", person_pts])
            local = page.evaluate(READ_PIXELS, ["local", person_pts])
            assert bg is not None and (distances(bg, magenta) < 60).mean() > 0.9, (bg[:5], logs)
            assert (distances(person, magenta) > 100).mean() > 0.9, person[:5]
            # the person's pixels are the camera's own (up to codec error and a frame or two of lag)
            assert np.median(np.abs(np.asarray(person, int) - np.asarray(local, int))) < 40

            # 2. a control message on the data channel changes it on the next frames
            cyan = (0, 255, 255)
            page.evaluate("window.backdrop.setSettings({colour: '#00ffff'})")
            bg = poll(page, "processed", bg_pts, lambda p: (distances(p, cyan) < 60).mean() > 0.9)
            assert bg is not None and (distances(bg, cyan) < 60).mean() > 0.9, bg[:5]
            person = np.asarray(page.evaluate(READ_PIXELS, ["processed", person_pts]), int)
            assert (distances(person, cyan) > 100).mean() > 0.9, person[:5]

            # 3. the viewer page receives the same composited stream
            viewer = ctx.new_page()
            viewer.goto(srv.url + "viewer?auto")
            got = poll(viewer, "remote", bg_pts, lambda p: (distances(p, cyan) < 60).mean() > 0.9)
            assert got is not None and (distances(got, cyan) < 60).mean() > 0.9, got
            viewer.close()

            # 4. effect off (the checkbox): the room is back
            page.locator("#effect").uncheck()
            bg = poll(page, "processed", bg_pts, lambda p: (distances(p, cyan) > 60).mean() > 0.9)
            assert bg is not None and (distances(bg, cyan) > 60).mean() > 0.9
            assert not [e for e in page.evaluate("window.backdrop.errors")]
        finally:
            ctx.close()
        assert srv.stats()["publishers"] == 0 or _wait_idle(srv)
    assert time.monotonic() - t_start < 120


def _wait_idle(srv, timeout=15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if srv.stats()["publishers"] == 0:
            return True
        time.sleep(0.2)
    return False
