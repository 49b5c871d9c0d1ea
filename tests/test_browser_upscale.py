"""The page's x2 super-resolution (gl-upscale.js) in real headless Chromium (software WebGL):

- the WebGL2 passes compute what Python computes (``backdrop.upscale``) on a real picture of an
  odd size, to within rounding, and not what plain bilinear scaling gives;
- a publisher that sends at half size reaches a viewer at half size, and the viewer's
  "upscale x2" shows it at full size, closer to the original (Y-PSNR) than the browser's own
  scaling of the same received frame; the page's stats() report the network's pass time.
"""

from __future__ import annotations

import base64
import time

import cv2
import numpy as np
import pytest

from conftest import shared_path
from test_browser import browser_bits, find_chromium  # noqa: F401
from test_browser_local import LOCAL_FLAGS, session, still_y4m, wait_until  # noqa: F401

pytestmark = pytest.mark.browser

# one received frame (a WebRTC <video> may change its frame between two reads in one task, so it
# is read once, into a canvas), then the network's x2 of it and the browser's own x2 of it
READ_BOTH = """async () => {
  const st = window.backdropViewer; const v = document.getElementById("remote");
  if (!st.upscale.view || !v.videoWidth || v.readyState < 2) return null;
  const w = v.videoWidth, h = v.videoHeight, c = document.getElementById("upscaled");
  const grab = (src, cw, ch) => { const k = document.createElement("canvas"); k.width = cw; k.height = ch;
    k.getContext("2d").drawImage(src, 0, 0, cw, ch); return k; };
  const received = grab(v, w, h);
  st.upscale.view.draw(received, w, h);
  return { ours: grab(c, 2 * w, 2 * h).toDataURL("image/png"), browser: grab(received, 2 * w, 2 * h).toDataURL("image/png"),
           received: received.toDataURL("image/png"), w, h };
}"""


def decode(url: str) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def y_psnr(a: np.ndarray, b: np.ndarray) -> float:
    ya, yb = (cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float64) for x in (a, b))
    return 10 * np.log10(255.0 ** 2 / max(1e-10, float(np.mean((ya - yb) ** 2))))


def test_the_webgl_passes_compute_what_python_computes(browser_bits, tmp_path):  # noqa: F811
    from backdrop.superres import Upscaler
    from backdrop.web.server import ServerConfig, ServerThread

    chromium, sync_playwright = browser_bits
    frame = cv2.cvtColor(cv2.imread(str(sorted(shared_path("portraits-soft", "images").iterdir())[0])),
                         cv2.COLOR_BGR2RGB)
    frame = np.ascontiguousarray(frame[:241, :317])  # odd sizes: the first pass clamps, nothing pads
    ok, png = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    url = "data:image/png;base64," + base64.b64encode(png.tobytes()).decode()
    js = """async (url) => {
      const { UpscaleView, fetchWeights } = await import("/static/gl-upscale.js");
      const im = new Image(); im.src = url; await im.decode();
      const c = document.createElement("canvas");
      const view = new UpscaleView(c, await fetchWeights());
      view.draw(im, im.width, im.height);
      const k = document.createElement("canvas"); k.width = c.width; k.height = c.height;
      k.getContext("2d").drawImage(c, 0, 0);
      return k.toDataURL("image/png");
    }"""
    with ServerThread(ServerConfig(port=0)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=LOCAL_FLAGS)
        try:
            page = browser.new_page()
            page.goto(srv.url + "viewer")
            gl = decode(page.evaluate(js, url))
        finally:
            browser.close()
    py = Upscaler().rgb(frame)
    bilinear = cv2.resize(frame, (frame.shape[1] * 2, frame.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    assert gl.shape == py.shape == (482, 634, 3)
    diff = np.abs(gl.astype(int) - py.astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.4, (diff.max(), diff.mean())
    assert np.abs(gl.astype(int) - bilinear.astype(int)).mean() > 3 * diff.mean()


def test_a_viewer_upscales_half_size_video_sharper_than_the_browser(session, tmp_path):  # noqa: F811
    srv, make = session
    original = cv2.cvtColor(cv2.imread(str(shared_path("backgrounds-extra", "unsplash-office_2.jpg"))),
                            cv2.COLOR_BGR2RGB)
    assert original.shape == (720, 1280, 3)
    s = make(still_y4m(tmp_path / "still.y4m", original, n=10))
    page = s.open("?w=1280&h=720&half=1")
    page.evaluate("window.backdrop.setSettings({effect: false})")  # the camera as it is: a known truth
    assert page.evaluate("window.backdrop.stats().half_size") is True
    token = page.evaluate("window.backdrop.token")
    viewer = s.ctx.new_page()
    viewer.goto(f"{srv.url}viewer?token={token}&auto=1&upscale=1")
    got = wait_until(lambda: (lambda r: r if r and r["w"] == 640 else None)(viewer.evaluate(READ_BOTH)), 60,
                     "half-size video upscaled on the viewer")
    time.sleep(4)  # a few seconds more: the encoder's bit rate ramps up, the picture settles
    got = viewer.evaluate(READ_BOTH)
    assert (got["w"], got["h"]) == (640, 360)
    ours, browser, received = decode(got["ours"]), decode(got["browser"]), decode(got["received"])
    assert ours.shape == browser.shape == original.shape
    from backdrop.superres import Upscaler

    assert np.abs(ours.astype(int) - Upscaler().rgb(received).astype(int)).mean() < 0.4  # the page = Python
    p_ours, p_browser = y_psnr(ours, original), y_psnr(browser, original)
    assert p_ours > p_browser + 0.3, (p_ours, p_browser)
    stats = wait_until(lambda: (lambda st: st if st.get("upscale_stats", {}).get("pass_ms_p50") else None)(
        viewer.evaluate("window.backdropViewer.stats()")), 30, "the pass time in stats()")
    assert stats["video"] == [640, 360] and stats["upscale_stats"]["out"] == [1280, 720]
    assert stats["upscale_stats"]["pass_ms_p50"] > 0
    assert "->" in viewer.evaluate("document.getElementById('upscale-cost').textContent")
    assert not [m for m in s.logs if m.startswith("pageerror")], s.logs[-5:]
