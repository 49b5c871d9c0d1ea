"""On-device mode in a real browser: headless Chromium (software WebGL, SwiftShader) runs the
page's own pipeline on a fake camera that plays real frames, with every host but 127.0.0.1
unresolvable (the runtime and model must come from the server's cache). What the page streams
(``canvas.captureStream()``, the track viewers get) is read back through a canvas:

- the background becomes the chosen colour while the person's pixels stay the camera's, and
  the server processes no frame at all meanwhile; a viewer page receives the processed track;
- blur of the room does not smear the person into it (the ring just outside them keeps the
  room's brightness, where a plain blur darkens it with their hair);
- touch-up smooths the skin of a real face but keeps the eyes' edges;
- presenter mode shows the slides, and the arrow keys change them; record gives a WebM file;
- the switch to server mode reloads into the server path.
"""

from __future__ import annotations

import base64
import time

import cv2
import numpy as np
import pytest

from conftest import load_pairs, ring_outside, shared_path
from test_browser import READ_PIXELS, browser_bits, distances, fake_camera, find_chromium  # noqa: F401

pytestmark = pytest.mark.browser

LOCAL_FLAGS = [
    "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--mute-audio", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns,MediaRouter,OptimizationHints,Translate",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline but for our server
]
CAPTURE = """() => {
  let v = document.getElementById("captured");
  if (!v) {
    v = document.createElement("video");
    v.id = "captured"; v.muted = true; v.autoplay = true; v.playsInline = true;
    v.srcObject = window.backdrop.stream;
    document.body.append(v);
    v.play();
  }
  return true;
}"""
SNAPSHOT = """(id) => {
  const v = document.getElementById(id);
  if (!v || !v.videoWidth || v.readyState < 2) return null;
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  return c.toDataURL("image/png");
}"""


def frames_of(page) -> int:
    return page.evaluate("window.backdrop && typeof window.backdrop.stats === 'function' ? "
                         "window.backdrop.stats().frames : 0")


def wait_until(check, timeout=60.0, what="the page"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = check()
        except Exception as exc:  # the page is navigating (the switch reloads it): ask again
            if "context was destroyed" not in str(exc) and "navigat" not in str(exc):
                raise
            time.sleep(0.25)
            continue
        if value is not None and value is not False and not (isinstance(value, (int, float, str, list)) and not value):
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} did not get there in {timeout:g} s")


def snapshot(page, video_id="captured") -> np.ndarray | None:
    url = page.evaluate(SNAPSHOT, video_id)
    if not url:
        return None
    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def settle(page, frames=12):
    """Wait for ``frames`` more processed frames (temporal fusion needs a few to follow a change)."""
    start = frames_of(page)
    wait_until(lambda: frames_of(page) >= start + frames, 60, "processing")
    time.sleep(0.3)


class Session:
    def __init__(self, srv, pw, chromium, y4m, tmp_path):
        self.srv = srv
        self.ctx = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=[*LOCAL_FLAGS, f"--use-file-for-fake-video-capture={y4m}"])
        self.page = self.ctx.new_page()
        self.logs = []
        self.page.on("console", lambda m: self.logs.append(m.text))
        self.page.on("pageerror", lambda e: self.logs.append(f"pageerror: {e}"))

    def open(self, query):
        self.page.goto(self.srv.url + query)
        wait_until(lambda: frames_of(self.page) > 5, 90, "on-device processing")
        self.page.evaluate(CAPTURE)
        wait_until(lambda: snapshot(self.page) is not None, 20, "the captured stream")
        return self.page

    def close(self):
        self.ctx.close()


@pytest.fixture
def session(browser_bits, tmp_path):  # noqa: F811
    from backdrop.web.app import local_files
    from backdrop.web.server import ServerConfig, ServerThread

    packages, models = local_files()
    if not packages or not models:
        pytest.skip("the browser packages are not cached (backdrop models --fetch web)")
    chromium, sync_playwright = browser_bits
    opened = []
    with ServerThread(ServerConfig(port=0)) as srv, sync_playwright() as pw:
        def make(y4m):
            s = Session(srv, pw, chromium, y4m, tmp_path / f"s{len(opened)}")
            opened.append(s)
            return s
        yield srv, make
        for s in opened:
            s.close()


def still_y4m(path, image, n=20):
    from backdrop.io.camera import write_y4m

    return write_y4m(path, [image] * n, fps=30)


def test_on_device_the_room_becomes_the_colour_and_the_server_processes_nothing(session, fake_camera):  # noqa: F811
    srv, make = session
    y4m, bg_pts, person_pts = fake_camera
    s = make(y4m)
    page = s.open("?w=512&h=480")
    stats = page.evaluate("window.backdrop.stats()")
    assert stats["where"] == "browser" and "litertjs" in stats["runtime"] and stats["model"] == "selfie"
    assert stats["fps"] > 0 and stats["frame_ms_p50"] > 0 and stats["frames"] > 5
    # the colour picker, as a user sets it
    page.evaluate("""() => { const c = document.getElementById("colour"); c.value = "#ff00ff";
                     c.dispatchEvent(new Event("input", {bubbles: true})); }""")
    settle(page)
    bg = np.asarray(page.evaluate(READ_PIXELS, ["captured", bg_pts]), int)
    person = np.asarray(page.evaluate(READ_PIXELS, ["captured", person_pts]), int)
    camera = np.asarray(page.evaluate(READ_PIXELS, ["local", person_pts]), int)
    assert (distances(bg, (255, 0, 255)) < 40).mean() > 0.9, bg[:8]
    assert (distances(person, (255, 0, 255)) > 100).mean() > 0.9, person[:8]
    assert (np.abs(person - camera).max(axis=1) < 60).mean() > 0.8, "the person's own pixels stay"
    # a viewer page gets the processed track, browser to browser
    token = page.evaluate("window.backdrop.token")
    viewer = s.ctx.new_page()
    viewer.goto(f"{srv.url}viewer?token={token}&auto=1")
    wait_until(lambda: viewer.evaluate(READ_PIXELS, ["remote", bg_pts[:10]]), 40, "the viewer's video")
    seen = wait_until(lambda: (lambda px: px if (distances(px, (255, 0, 255)) < 60).mean() > 0.8 else None)(
        np.asarray(viewer.evaluate(READ_PIXELS, ["remote", bg_pts]), int)), 20, "the viewer's magenta")
    assert seen is not None
    st = srv.stats()
    assert st["frames_processed"] == 0 and st["publishers"] == 0 and st["local_publishers"] == 1
    assert page.evaluate("window.backdrop.stats().viewers") == 1
    assert not [m for m in s.logs if m.startswith("pageerror")], s.logs[-5:]


def test_blurring_the_room_does_not_smear_the_person_into_it(session, segmenter, tmp_path):
    srv, make = session
    frame = next(iter(__import__("backdrop.io.video", fromlist=["VideoReader"]).VideoReader(
        shared_path("clips", "talking-room-512x480.mp4")))).image
    s = make(still_y4m(tmp_path / "still.y4m", frame))
    page = s.open("?w=512&h=480")
    page.evaluate("window.backdrop.setSettings({blur: 20})")
    settle(page, 20)
    out = snapshot(page)
    assert out.shape == frame.shape
    person = (cv2.resize(segmenter(frame), frame.shape[1::-1]) > 0.5).astype(np.uint8)
    ring = cv2.dilate(person, np.ones((41, 41), np.uint8)) - cv2.dilate(person, np.ones((15, 15), np.uint8))
    ring = ring.astype(bool)
    luma = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(float)  # noqa: E731
    ours = abs(luma(out)[ring].mean() - luma(frame)[ring].mean())
    sigma = 20 * max(frame.shape[:2]) / 640
    naive = abs(luma(cv2.GaussianBlur(frame, (0, 0), sigma))[ring].mean() - luma(frame)[ring].mean())
    assert ours < 8 and naive > 2 * ours, (ours, naive)
    inside = cv2.erode(person, np.ones((21, 21), np.uint8)).astype(bool)
    assert np.abs(out[inside].astype(int) - frame[inside]).mean() < 6, "the person is not blurred"
    outside = ~cv2.dilate(person, np.ones((61, 61), np.uint8)).astype(bool)
    lap = lambda im: np.abs(cv2.Laplacian(luma(im), cv2.CV_64F))[outside].mean()  # noqa: E731
    assert lap(out) < 0.5 * lap(frame), "the room is blurred"


def test_touch_up_smooths_skin_but_keeps_the_eyes(session, tmp_path):
    from backdrop.metrics.texture import face_box, texture_ratios

    srv, make = session
    name, img, truth = next(p for p in load_pairs("portraits-soft") if p[0] == "model-2911329_1920")
    k = 640 / img.shape[1]
    size = (640, int(round(img.shape[0] * k / 2)) * 2)
    img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    truth = cv2.resize(truth, size, interpolation=cv2.INTER_AREA)
    box = face_box(img, truth)
    assert box is not None
    s = make(still_y4m(tmp_path / "face.y4m", img))
    page = s.open(f"?w={size[0]}&h={size[1]}")
    page.evaluate("window.backdrop.setSettings({colour: '#404040'})")
    settle(page, 15)
    before = snapshot(page)
    page.evaluate("window.backdrop.setSettings({touchUp: 1})")
    settle(page, 15)
    after = snapshot(page)
    r = texture_ratios(before, after, truth, box)
    assert r["fine"] < 0.7, r       # pores and grain (the Python stage: 0.33-0.42)
    assert r["eyes"] > 0.93 and r["edges"] > 0.93, r
    page.evaluate("window.backdrop.setSettings({touchUp: 0})")
    settle(page, 15)
    again = texture_ratios(before, snapshot(page), truth, box)
    assert again["fine"] > 0.95, again  # strength 0 is the untouched frame


def slide_files(tmp_path):
    paths = []
    for i, colour in enumerate([(230, 40, 40), (40, 60, 230)]):
        img = np.full((540, 960, 3), colour, np.uint8)
        cv2.putText(img, f"slide {i + 1}", (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 6)
        p = tmp_path / f"slide{i + 1}.png"
        cv2.imwrite(str(p), img[..., ::-1])
        paths.append(str(p))
    return paths


def two_page_pdf(path):
    """A real two-page PDF (red, then blue, 16:9), written by hand: no PDF library needed."""
    pages = [b"0.9 0.16 0.16 rg 0 0 960 540 re f", b"0.16 0.24 0.9 rg 0 0 960 540 re f"]
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>"]
    for i, content in enumerate(pages):
        objs.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 960 540] /Contents %d 0 R >>" % (4 + 2 * i))
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for n, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    path.write_bytes(bytes(out))
    return str(path)


def test_pdf_slides_and_an_uploaded_picture_stay_in_the_browser(session, fake_camera, tmp_path):  # noqa: F811
    srv, make = session
    y4m, bg_pts, _ = fake_camera
    s = make(y4m)
    page = s.open("?w=512&h=480")
    page.set_input_files("#slides", two_page_pdf(tmp_path / "deck.pdf"))
    wait_until(lambda: "of 2" in page.evaluate("document.getElementById('slide-number').textContent"), 30, "the PDF")
    settle(page)
    out = snapshot(page)
    assert out.shape[1] > out.shape[0] * 1.6, out.shape  # the slides' 16:9
    assert np.abs(out[out.shape[0] // 2, out.shape[1] // 10].astype(int) - (230, 41, 41)).max() < 40
    page.keyboard.press("PageDown")
    settle(page)
    out = snapshot(page)
    assert np.abs(out[out.shape[0] // 2, out.shape[1] // 10].astype(int) - (41, 61, 230)).max() < 40
    # a picture background: uploaded into this page only
    pic = np.zeros((300, 400, 3), np.uint8)
    pic[:] = (20, 200, 220)
    cv2.imwrite(str(tmp_path / "bg.png"), pic[..., ::-1])
    page.set_input_files("#upload", str(tmp_path / "bg.png"))
    settle(page)
    bg = np.asarray(page.evaluate(READ_PIXELS, ["captured", bg_pts]), int)
    assert (distances(bg, (20, 200, 220)) < 40).mean() > 0.9, bg[:5]
    st = srv.stats()
    assert st["frames_processed"] == 0 and st["publishers"] == 0  # nothing was sent to the server
    assert not any(srv.server.upload_root.iterdir())  # and no upload reached its folder


def test_presenter_slides_keys_and_recording(session, fake_camera, tmp_path):  # noqa: F811
    srv, make = session
    y4m, _, _ = fake_camera
    s = make(y4m)
    page = s.open("?w=512&h=480")
    page.set_input_files("#slides", slide_files(tmp_path))
    wait_until(lambda: page.evaluate("document.getElementById('slide-number').textContent"), 20, "the slides")
    settle(page)
    out = wait_until(lambda: (lambda im: im if im is not None and im.shape[1] > im.shape[0] * 1.6 else None)(
        snapshot(page)), 20, "the slides' aspect")
    left = out[out.shape[0] // 2, out.shape[1] // 10].astype(int)
    assert np.abs(left - (230, 40, 40)).max() < 40, left
    page.keyboard.press("ArrowRight")
    settle(page)
    out = snapshot(page)
    left = out[out.shape[0] // 2, out.shape[1] // 10].astype(int)
    assert np.abs(left - (40, 60, 230)).max() < 40, left
    assert "slide 2 of 2" in page.evaluate("document.getElementById('slide-number').textContent")
    # record: a real WebM comes out (EBML magic), offered as a download
    page.click("#record")
    settle(page, 20)
    page.click("#record")
    wait_until(lambda: page.evaluate("Boolean(window.backdrop.recording)"), 20, "the recording")
    head = page.evaluate("""async () => Array.from(new Uint8Array(
        await window.backdrop.recording.slice(0, 4).arrayBuffer()))""")
    assert head == [0x1A, 0x45, 0xDF, 0xA3] and page.evaluate("window.backdrop.recording.size") > 1000
    assert page.is_visible("#download")


def test_the_switch_reloads_into_server_processing(session, fake_camera):  # noqa: F811
    srv, make = session
    y4m, _, _ = fake_camera
    s = make(y4m)
    page = s.open("?w=512&h=480")
    page.check("#on-server")
    wait_until(lambda: page.evaluate("window.backdrop && window.backdrop.where") == "server", 30, "server mode")
    assert "on=server" in page.url
    wait_until(lambda: page.evaluate("window.backdrop.stats().frames") > 3, 60, "server processing")
    assert srv.stats()["frames_processed"] > 0


@pytest.mark.parametrize("clip,size", [("office-desk-960x540.mp4", (640, 360)), ("talking-room-512x480.mp4", (512, 480)),
                                       ("clips-gt/lucia/frames/00030.jpg", (854, 480))])
def test_the_browser_matte_agrees_with_the_python_pipeline(session, tmp_path, clip, size):
    """The same still frame through the page (kind "matte": the alpha as grey) and through the
    Python default pipeline: the person (alpha > 0.5) must agree, IoU >= 0.95."""
    from backdrop import Pipeline
    from backdrop.io.video import VideoReader

    srv, make = session
    if clip.endswith(".jpg"):  # a whole body walking (DAVIS): the person tracker's case
        from backdrop.io.image import read_image

        frame = cv2.resize(read_image(shared_path(*clip.split("/"))), size, interpolation=cv2.INTER_AREA)
    else:
        frame = cv2.resize(next(iter(VideoReader(shared_path("clips", clip)))).image, size, interpolation=cv2.INTER_AREA)
    pipe = Pipeline(background="#000000")
    for _, matte, _ in pipe.stream([frame] * 10):
        pass
    s = make(still_y4m(tmp_path / "still.y4m", frame))
    page = s.open(f"?w={size[0]}&h={size[1]}")
    page.evaluate("window.backdrop.setSettings({kind: 'matte'})")
    settle(page, 15)
    ours = snapshot(page)[..., 0].astype(np.float32) / 255
    assert len(page.evaluate("window.backdrop.people || []")) == len(pipe.people), "the same people tracked"
    a, b = ours > 0.5, matte > 0.5
    iou = (a & b).sum() / max(1, (a | b).sum())
    assert iou >= 0.95, (iou, np.abs(ours - matte).mean())
    assert np.abs(ours - matte).mean() < 0.05
    if clip.endswith(".jpg"):  # no glow: the page's refinement keeps to its network's band, as Python's does
        truth = cv2.resize(read_image(shared_path("clips-gt", "lucia", "masks", "00030.png"))[..., 0], size,
                           interpolation=cv2.INTER_NEAREST) > 127
        ring = ring_outside(truth)
        glow = float((ours[ring] > 0.1).mean())  # 14 % unbounded, 5 % now
        page.evaluate("window.backdrop.setSettings({refine: 'bilinear'})")
        settle(page, 15)
        plain = float((snapshot(page)[..., 0][ring] / 255 > 0.1).mean())  # the page's network alone: 2 %
        assert glow <= 3 * plain, (glow, plain, float((matte[ring] > 0.1).mean()))


def test_the_page_takes_its_passes_and_defaults_from_the_declaration(session, fake_camera, monkeypatch):  # noqa: F811
    """The page's pass order, option defaults and shared constants come from the server's
    declaration (GET /config, engine/declaration.py), not from copies in the page: a declared
    default changed on the server is what the page uses, and the stages it has no pass for are
    shown as server-only."""
    from dataclasses import replace

    from backdrop.engine import declaration
    from backdrop.stages import STAGES

    index = {s.name: i for i, s in enumerate(STAGES)}
    temporal, wrap = STAGES[index["temporal"]], STAGES[index["light_wrap"]]
    changed = list(STAGES)
    changed[index["temporal"]] = replace(temporal, options=[replace(temporal.options[0], default=0.4)],
                                         constants={**temporal.constants, "motion_low": 3.0})
    changed[index["light_wrap"]] = replace(wrap, options=[replace(wrap.options[0], default=0.3)])
    monkeypatch.setattr(declaration, "STAGES", changed)
    srv, make = session
    y4m, _, _ = fake_camera
    page = make(y4m).open("?w=512&h=480")
    settings = page.evaluate("window.backdrop.settings")
    assert settings["temporal"] == 0.4 and settings["light_wrap"] == 0.3, settings
    assert page.evaluate("document.getElementById('light-wrap').value") == "0.3"
    stats = page.evaluate("window.backdrop.stats()")
    declared = [s.name for s in STAGES if s.web]
    assert stats["passes"] == declared, stats["passes"]  # in the declared order
    assert set(stats["server_only"]) == {s.name for s in STAGES if not s.web} and "cleanup" in stats["server_only"]
    assert "light_wrap" in stats["stages_ms"]  # the declared default switched the pass on
    assert "cleanup" in page.evaluate("document.getElementById('server-only-stages').textContent")
    constants = page.evaluate("window.backdrop.declaration.stages.find((s) => s.name === 'temporal').constants")
    assert constants["motion_low"] == 3.0
