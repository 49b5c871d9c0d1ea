// Backdrop page: camera -> server over WebRTC -> composite back; controls over a data channel.
// Everything the page knows is in window.backdrop, so tests (and curious users) can look inside.
"use strict";

const $ = (id) => document.getElementById(id);
const CHUNK = 16 * 1024;            // data-channel messages stay well under SCTP's 64 KiB limit
const state = {
  pc: null, channel: null, peer: null, settings: null, serverStats: null, models: [], where: "server",
  maxUpload: 8 * 1024 * 1024, errors: [], messages: 0, connected: false,
};
window.backdrop = state;
// the same readout as on-device mode: where, fps and frame times (here: the server's own numbers)
state.stats = () => {
  const s = state.serverStats || {};
  return { where: "server", fps: s.fps ?? 0, frame_ms_p50: s.latency_ms_p50 ?? null,
    frame_ms_p95: s.latency_ms_p95 ?? null, frames: s.processed ?? 0, runtime: "server", model: state.settings && state.settings.model };
};

function setStatus(text) { $("status").textContent = text; }
function showError(text) {
  state.errors.push(text);
  const el = $("error");
  el.textContent = text;
  el.hidden = false;
}
function clearError() { $("error").hidden = true; }

function send(obj) {
  if (!state.channel || state.channel.readyState !== "open") {
    showError("not connected yet");
    return false;
  }
  state.channel.send(JSON.stringify(obj));
  return true;
}
state.send = send;
state.setSettings = (settings) => send({ type: "settings", settings });

function reflect(settings) {
  state.settings = settings;
  $("effect").checked = settings.effect;
  if (settings.key !== undefined) $("key").value = settings.key;
  if (settings.kind === "blur") { $("mode-blur").checked = true; $("blur").value = settings.blur; }
  else if (settings.kind === "colour") { $("mode-colour").checked = true; $("colour").value = settings.colour; }
  else if (settings.kind === "image") { $("mode-image").checked = true; }
  if (settings.model && ![...$("model").options].some((o) => o.value === settings.model)) {
    $("model").append(new Option(settings.model, settings.model));
  }
  if (settings.model) $("model").value = settings.model;
}

function showViewerLink(token) {
  // only this page knows the token: whoever gets the link may watch this stream
  if (!token) return;
  state.token = token;
  try { localStorage.setItem("backdrop-viewer-token", token); } catch (e) { /* private mode */ }
  const a = $("viewer-link");
  a.href = `/viewer?token=${encodeURIComponent(token)}`;
  a.textContent = `${location.origin}/viewer?token=${token}`;
}

function onMessage(event) {
  if (typeof event.data !== "string") return;
  let msg;
  try { msg = JSON.parse(event.data); } catch (e) { return; }
  state.messages += 1;
  switch (msg.type) {
    case "hello":
      state.peer = msg.peer;
      showViewerLink(msg.token);
      state.models = msg.models || [];
      state.maxUpload = msg.max_upload_bytes || state.maxUpload;
      $("model").replaceChildren(...state.models.map((m) => new Option(m, m)));
      reflect(msg.settings);
      break;
    case "state": clearError(); reflect(msg.settings); break;
    case "uploaded": clearError(); setStatus(`using ${msg.name}`); break;
    case "stats": {
      state.serverStats = msg;
      const ms = msg.process_ms == null ? "–" : `${msg.process_ms} ms`;
      const lat = msg.latency_ms_p50 == null ? "–" : `${msg.latency_ms_p50} ms`;
      $("stats").textContent = `(${msg.fps} fps, ${ms} per frame, ${lat} in server, ${msg.dropped} dropped)`;
      break;
    }
    case "error": showError(msg.message); break;
    default: break;
  }
}

function waitIceGathering(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
    setTimeout(resolve, 3000);       // host candidates are enough on a LAN
  });
}

async function upload(file) {
  if (!file) return;
  if (file.size > state.maxUpload) {
    showError(`${file.name} is too large (${file.size} bytes, the limit is ${state.maxUpload})`);
    return;
  }
  const ch = state.channel;
  if (!send({ type: "upload", name: file.name, mime: file.type, size: file.size })) return;
  setStatus(`uploading ${file.name}…`);
  ch.bufferedAmountLowThreshold = 256 * 1024;
  const data = new Uint8Array(await file.arrayBuffer());
  for (let off = 0; off < data.length; off += CHUNK) {
    if (ch.bufferedAmount > 1024 * 1024) {
      await new Promise((r) => ch.addEventListener("bufferedamountlow", r, { once: true }));
    }
    ch.send(data.subarray(off, off + CHUNK));
  }
}
state.upload = upload;

function wireControls() {
  $("effect").addEventListener("change", (e) => state.setSettings({ effect: e.target.checked }));
  $("blur").addEventListener("input", (e) => {
    $("mode-blur").checked = true;
    state.setSettings({ blur: Number(e.target.value), effect: true });
  });
  $("mode-blur").addEventListener("change", () => state.setSettings({ blur: Number($("blur").value), effect: true }));
  const colour = () => {
    $("mode-colour").checked = true;
    state.setSettings({ colour: $("colour").value, effect: true });
  };
  $("colour").addEventListener("input", colour);
  $("colour").addEventListener("change", colour);
  $("mode-colour").addEventListener("change", colour);
  $("upload").addEventListener("change", (e) => upload(e.target.files[0]));
  $("model").addEventListener("change", (e) => state.setSettings({ model: e.target.value }));
  // matte modes: a green/blue screen, or a clean plate learnt from the next frames (nobody in view)
  $("key").addEventListener("change", (e) => state.setSettings({ key: e.target.value, effect: true }));
  $("learn-plate").addEventListener("click", () => state.setSettings({ plate: "learn", effect: true }));
  $("forget-plate").addEventListener("click", () => state.setSettings({ plate: "" }));
}

async function start() {
  wireControls();
  const params = new URLSearchParams(location.search);
  const width = Number(params.get("w")) || 1280;
  const height = Number(params.get("h")) || 720;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: 30 } },
      audio: false,
    });
  } catch (e) {
    showError(`cannot use the camera: ${e.name}: ${e.message}` +
              (location.protocol === "http:" && location.hostname !== "127.0.0.1" && location.hostname !== "localhost"
                ? " (browsers allow the camera only on https:// or localhost)" : ""));
    setStatus("no camera");
    return;
  }
  $("local").srcObject = stream;
  state.localStream = stream;

  const pc = new RTCPeerConnection();
  state.pc = pc;
  for (const track of stream.getVideoTracks()) pc.addTrack(track, stream);
  const channel = pc.createDataChannel("controls", { ordered: true });
  channel.binaryType = "arraybuffer";
  channel.addEventListener("message", onMessage);
  state.channel = channel;
  pc.addEventListener("track", (e) => {
    window.backdropLowLatency(e.receiver);
    $("processed").srcObject = e.streams && e.streams[0] ? e.streams[0] : new MediaStream([e.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    setStatus(pc.connectionState);
    state.connected = pc.connectionState === "connected";
    if (pc.connectionState === "failed") showError("connection to the server failed");
  });

  await pc.setLocalDescription(await pc.createOffer());
  await waitIceGathering(pc);
  setStatus("connecting…");
  let res, body;
  try {
    res = await fetch("/offer", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    body = await res.json();
  } catch (e) {
    showError(`the server did not answer: ${e.message}`);
    setStatus("offline");
    return;
  }
  if (!res.ok) {
    showError(body.error || `the server refused (${res.status})`);
    setStatus("refused");
    pc.close();
    return;
  }
  state.peer = body.peer;
  showViewerLink(body.token);
  await pc.setRemoteDescription({ sdp: body.sdp, type: body.type });
}

window.addEventListener("beforeunload", () => { if (state.pc) state.pc.close(); });
start().catch((e) => showError(String(e)));
