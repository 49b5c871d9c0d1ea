// Publishing the processed canvas: canvas.captureStream(fps) is the track. Viewers reach it
// browser to browser; the server only relays the offer and the answer (web/local.py), never a
// frame. "record" keeps the same track in a WebM file with MediaRecorder. "send at half size"
// asks each viewer's encoder for half the width and height (scaleResolutionDownBy, the knob
// calls use for simulcast layers), at a fixed resolution so the viewer's upscale x2 restores it.
"use strict";

function waitIce(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    setTimeout(resolve, 3000);
  });
}

export class Publisher {
  constructor(stream, onError) {
    this.stream = stream; this.onError = onError;
    this.viewers = new Set(); this.session = null; this.stopped = false; this.halfSize = false;
  }

  async setHalfSize(on) {
    this.halfSize = on;
    await Promise.all([...this.viewers].map((pc) => this.applySize(pc)));
  }

  async applySize(pc) {
    for (const sender of pc.getSenders()) {
      if (!sender.track || sender.track.kind !== "video") continue;
      const p = sender.getParameters();
      if (!p.encodings || !p.encodings.length) continue;
      for (const e of p.encodings) e.scaleResolutionDownBy = this.halfSize ? 2 : 1;
      // half size is the point: never let the encoder shrink it further under load
      p.degradationPreference = this.halfSize ? "maintain-resolution" : "balanced";
      await sender.setParameters(p).catch(() => {});
    }
  }

  async start() {
    const res = await fetch("/local", { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `the server refused (${res.status})`);
    this.session = body;
    this.poll();
    return body;
  }

  async poll() {
    const { id, secret } = this.session;
    let failures = 0;
    while (!this.stopped) {
      try {
        const res = await fetch(`/local/${id}/next`, { headers: { "X-Backdrop-Secret": secret }, cache: "no-store" });
        if (res.status === 200) { this.answer(await res.json()).catch((e) => this.onError(`viewer: ${e}`)); }
        else if (res.status === 404) { await this.start(); return; }     // timed out: register again
        else if (res.status !== 204) throw new Error(`poll refused (${res.status})`);  // 403/429/503: back off
        failures = 0;
      } catch (e) {
        failures += 1;
        await new Promise((r) => setTimeout(r, Math.min(10000, 500 * 2 ** failures)));
      }
    }
  }

  async answer({ viewer, sdp }) {
    const pc = new RTCPeerConnection();
    this.viewers.add(pc);
    pc.addEventListener("connectionstatechange", () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState)) { this.viewers.delete(pc); pc.close(); }
    });
    for (const track of this.stream.getVideoTracks()) pc.addTrack(track, this.stream);
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await this.applySize(pc);
    await waitIce(pc);
    const { id, secret } = this.session;
    const res = await fetch(`/local/${id}/answer`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ secret, viewer, type: "answer", sdp: pc.localDescription.sdp }),
    });
    if (!res.ok) { this.viewers.delete(pc); pc.close(); }
  }

  report(stats) {
    if (!this.session) return;
    const { id, secret } = this.session;
    fetch(`/local/${id}/stats`, { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ secret, stats }) }).catch(() => {});
  }

  stop() {
    this.stopped = true;
    for (const pc of this.viewers) pc.close();
    this.viewers.clear();
  }
}

export class Recorder {
  constructor(stream) { this.stream = stream; this.rec = null; this.chunks = []; }
  get recording() { return Boolean(this.rec) && this.rec.state === "recording"; }
  start() {
    const type = ["video/webm;codecs=vp9", "video/webm;codecs=vp8", "video/webm"].find((t) => MediaRecorder.isTypeSupported(t));
    this.chunks = [];
    this.rec = new MediaRecorder(this.stream, type ? { mimeType: type, videoBitsPerSecond: 4e6 } : undefined);
    this.rec.addEventListener("dataavailable", (e) => { if (e.data.size) this.chunks.push(e.data); });
    this.rec.start(1000);
  }
  stop() {
    return new Promise((resolve) => {
      this.rec.addEventListener("stop", () => resolve(new Blob(this.chunks, { type: "video/webm" })), { once: true });
      this.rec.stop();
    });
  }
}
