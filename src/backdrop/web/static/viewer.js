// Backdrop viewer: receive a publisher's composited stream (receive-only WebRTC), and, with
// "upscale x2", show it twice as large through Backdrop's own network on this GPU (gl-upscale.js).
"use strict";
import { UpscaleView, fetchWeights } from "./gl-upscale.js";

const $ = (id) => document.getElementById(id);
const state = { pc: null, source: null, errors: [] };
window.backdropViewer = state;
// the stream's token: from the publisher's viewer link, or (same browser) what its page stored
const params = new URLSearchParams(location.search);
state.token = params.get("token") || (() => {
  try { return localStorage.getItem("backdrop-viewer-token"); } catch (e) { return null; }
})();

function setStatus(text) { $("status").textContent = text; }

// upscale x2: the <video> keeps playing (as the texture source); each new frame is drawn by the
// network into the canvas, which takes its place. stats() tells the sizes and the pass time.
state.upscale = { on: false, view: null };
async function setUpscale(on) {
  const up = state.upscale;
  const video = $("remote");
  up.on = on;
  $("upscale").checked = on;
  if (on && !up.view) up.view = new UpscaleView($("upscaled"), await fetchWeights());
  $("upscaled").hidden = !on;
  video.classList.toggle("behind", on);
  if (!on) return;
  const step = () => {
    if (!up.on) return;
    up.view.draw(video, video.videoWidth, video.videoHeight);
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}
state.setUpscale = setUpscale;
state.stats = () => {
  const video = $("remote");
  const up = state.upscale;
  return { video: [video.videoWidth, video.videoHeight], upscale: up.on,
    ...(up.view ? { upscale_stats: up.view.stats() } : {}) };
};
setInterval(() => {
  const st = state.upscale.on && state.upscale.view ? state.upscale.view.stats() : null;
  $("upscale-cost").textContent = st && st.in
    ? `${st.in.join("x")} -> ${st.out.join("x")}, network ${st.pass_ms_p50 ?? "–"} ms p50 / ${st.pass_ms_p95 ?? "–"} ms p95 on this GPU`
    : "";
}, 1000);
function showError(text) {
  state.errors.push(text);
  $("error").textContent = text;
  $("error").hidden = false;
}

async function refresh() {
  try {
    if (!state.token) return;
    const res = await fetch(`/peers?token=${encodeURIComponent(state.token)}`);
    const body = await res.json();
    const select = $("source");
    const current = select.value;
    select.replaceChildren(new Option("newest", ""),
      ...body.publishers.map((p) => new Option(`${p.id} (${p.fps} fps)`, p.id)));
    select.value = [...select.options].some((o) => o.value === current) ? current : "";
  } catch (e) { /* the list is a convenience */ }
}

// tries: a busy server (503: as many viewers as it lets wait are being connected) is asked again
// a few times, after 1-3 s, before the page shows the refusal
async function watch(tries = 0) {
  $("error").hidden = true;
  if (state.pc) state.pc.close();
  const pc = new RTCPeerConnection();
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.addEventListener("track", (e) => {
    window.backdropLowLatency(e.receiver);
    $("remote").srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    setStatus(pc.connectionState);
    if (pc.connectionState === "failed" || pc.connectionState === "closed") showError("the stream ended");
  });
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
  const payload = { sdp: pc.localDescription.sdp, type: pc.localDescription.type };
  if ($("source").value) payload.peer = $("source").value;
  if (state.token) payload.token = state.token;
  const res = await fetch("/view", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload),
  });
  const body = await res.json().catch(() => ({}));
  if (res.status === 503 && tries < 4) {
    pc.close();
    setStatus("busy: trying again");
    await new Promise((resolve) => setTimeout(resolve, 1000 + 2000 * Math.random()));
    return watch(tries + 1);
  }
  if (!res.ok) {
    showError(body.error || `refused (${res.status})`);
    setStatus("waiting");
    pc.close();
    return;
  }
  state.source = body.source;
  await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
}

$("watch").addEventListener("click", () => watch().catch((e) => showError(String(e))));
$("upscale").addEventListener("change", (e) => setUpscale(e.target.checked).catch((err) => showError(String(err))));
if (params.get("upscale") === "1") setUpscale(true).catch((e) => showError(String(e)));
refresh();
setInterval(refresh, 3000);
if (!state.token) showError("open the viewer link shown on the publishing page (it carries the stream's token)");
if (params.has("auto")) watch().catch((e) => showError(String(e)));
