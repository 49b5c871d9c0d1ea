// On-device mode: camera -> segmentation in a web runtime (segment.js) -> WebGL2 passes
// (local-pipeline.js) -> the page's canvas -> canvas.captureStream() for viewers and recording.
// No frame goes to the server. window.backdrop.stats() tells where and how fast it runs.
"use strict";
import { GpuPipeline, declaredSettings } from "./local-pipeline.js";
import { createSegmenter, createTrackerModels } from "./segment.js";
import { PeopleTracker } from "./people.js";
import { Slides, presenterPlacement, trackBox } from "./slides.js";
import { Publisher, Recorder } from "./publish.js";
import { cropUv, personBox } from "./roi.js";
import { UpscaleView, fetchWeights } from "./gl-upscale.js";

const $ = (id) => document.getElementById(id);
const FPS = 30;
const keep = (arr, v, n = 300) => { arr.push(v); if (arr.length > n) arr.shift(); };
const pct = (arr, q) => {
  if (!arr.length) return null;
  const s = [...arr].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] * 10) / 10;
};
const hexRgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);

const state = {
  where: "browser", errors: [], frames: 0, times: [], history: [], stamps: [], ms: {}, settings: null,
  runtime: null, model: null, token: null, viewers: 0,
  tuning: {},  // the declared stage options (GET /config "pipeline"): set in startLocal
  passes: [], serverOnly: [],
};
// the sliders' names in earlier versions of setSettings, kept for scripts that use them
const ALIASES = { touchUp: "touch_up", lightWrap: "light_wrap" };
window.backdrop = state;

function showError(text) {
  state.errors.push(text);
  $("error").textContent = text;
  $("error").hidden = false;
}
const setStatus = (text) => { $("status").textContent = text; };

state.stats = () => {
  const now = performance.now();
  const recent = state.stamps.filter((t) => now - t < 2000);
  const fps = recent.length > 1 ? (recent.length - 1) * 1000 / (recent[recent.length - 1] - recent[0]) : 0;
  return { where: "browser", fps: Math.round(fps * 10) / 10, frame_ms_p50: pct(state.times, 0.5),
    frame_ms_p95: pct(state.times, 0.95), frames: state.frames, runtime: state.runtime, model: state.model,
    stages_ms: Object.fromEntries(Object.entries(state.ms).map(([k, v]) => [k, Math.round(v * 10) / 10])),
    viewers: state.viewers, passes: state.passes, server_only: state.serverOnly,
    half_size: Boolean(state.publisher && state.publisher.halfSize),
    ...(state.preview ? { upscale: state.preview.on, upscale_stats: state.preview.view.stats() } : {}) };
};

function readSettings() {
  const mode = document.querySelector('input[name="mode"]:checked').value;
  return {
    effect: $("effect").checked,
    kind: state.kindOverride || (mode === "image" && !state.hasPicture ? "blur" : mode),
    blur: Number($("blur").value), colour: $("colour").value, colourRgb: hexRgb($("colour").value),
    place: null, ...state.tuning,
    touch_up: Number($("touch-up").value), light_wrap: Number($("light-wrap").value),
  };
}

async function useUpload(file, pipeline) {
  if (!file) return;
  if (file.type.startsWith("video/")) {
    const v = document.createElement("video");
    v.muted = true; v.loop = true; v.playsInline = true; v.src = URL.createObjectURL(file);
    await v.play();
    state.backgroundVideo = v;  // a new frame each time the pipeline runs
  } else {
    const bitmap = await createImageBitmap(file);
    state.backgroundVideo = null;
    pipeline.setPicture(bitmap, bitmap.width, bitmap.height);
  }
  state.hasPicture = true;
  $("mode-image").checked = true;
  setStatus(`using ${file.name} (it stays in this browser)`);
}

function wire(pipeline, slides, publisher, canvasStream) {
  const changed = () => { state.settings = readSettings(); };
  for (const el of document.querySelectorAll('input[name="mode"]')) el.addEventListener("change", () => { state.kindOverride = null; });
  for (const el of document.querySelectorAll(".controls input")) el.addEventListener("input", changed);
  $("colour").addEventListener("input", () => { $("mode-colour").checked = true; changed(); });
  $("blur").addEventListener("input", () => { $("mode-blur").checked = true; changed(); });
  $("upload").addEventListener("change", (e) => useUpload(e.target.files[0], pipeline).then(changed)
    .catch((err) => showError(`cannot use ${e.target.files[0].name}: ${err.message || err}`)));
  const showSlide = async () => {
    const slide = await slides.current(Math.max(720, $("local").videoHeight || 720));
    if (slide) pipeline.setPicture(slide.source, slide.width, slide.height);
    $("slide-number").textContent = slides.count ? `slide ${slides.index + 1} of ${slides.count} (← →)` : "";
  };
  state.showSlide = showSlide;
  $("slides").addEventListener("change", async (e) => {
    try {
      await slides.load(e.target.files);
      $("mode-presenter").checked = true; changed();
      await showSlide();
    } catch (err) { showError(`cannot use these slides: ${err.message || err}`); }
  });
  document.addEventListener("keydown", (e) => {
    if (!slides.count || e.target.tagName === "INPUT" && e.target.type !== "radio") return;
    const step = { ArrowRight: 1, PageDown: 1, " ": 1, ArrowLeft: -1, PageUp: -1 }[e.key];
    if (step) { e.preventDefault(); slides.go(step); showSlide(); }
  });
  state.slides = slides;
  state.setSettings = (patch) => {
    if (patch.colour) { $("colour").value = patch.colour; $("mode-colour").checked = true; state.kindOverride = null; }
    if (patch.blur) { $("blur").value = patch.blur; $("mode-blur").checked = true; state.kindOverride = null; }
    for (const [alias, name] of Object.entries(ALIASES)) if (patch[alias] !== undefined) patch = { ...patch, [name]: patch[alias] };
    for (const key of Object.keys(state.tuning)) if (patch[key] !== undefined) state.tuning[key] = patch[key];
    if (patch.kind) {  // "matte" (the alpha as grey, for checks) has no button
      state.kindOverride = $(`mode-${patch.kind}`) ? null : patch.kind;
      if ($(`mode-${patch.kind}`)) $(`mode-${patch.kind}`).checked = true;
    }
    if (patch.effect !== undefined) $("effect").checked = patch.effect;
    if (patch.touch_up !== undefined) $("touch-up").value = patch.touch_up;
    if (patch.light_wrap !== undefined) $("light-wrap").value = patch.light_wrap;
    changed();
    return true;
  };
  // send at half size (viewers upscale), and the preview x2 through the network on this GPU
  state.publisher = publisher;
  state.setHalfSize = (on) => { $("half-size").checked = on; return publisher.setHalfSize(on); };
  $("half-size").addEventListener("change", (e) => publisher.setHalfSize(e.target.checked));
  state.setPreviewUpscale = async (on) => {
    $("preview-upscale").checked = on;
    if (on && !state.preview) state.preview = { on: false, view: new UpscaleView($("output-up"), await fetchWeights()) };
    if (state.preview) state.preview.on = on;
    $("output-up").hidden = !on;
    $("output").classList.toggle("behind", on);  // still drawn and streamed, just not shown
  };
  $("preview-upscale").addEventListener("change", (e) => state.setPreviewUpscale(e.target.checked)
    .catch((err) => showError(`upscale: ${err.message || err}`)));
  const recorder = new Recorder(canvasStream);
  $("record").addEventListener("click", async () => {
    if (!recorder.recording) { recorder.start(); $("record").textContent = "stop recording"; return; }
    const blob = await recorder.stop();
    $("record").textContent = "record";
    const a = $("download");
    if (a.href) URL.revokeObjectURL(a.href);
    a.href = URL.createObjectURL(blob); a.hidden = false;
    a.textContent = `download the recording (${Math.round(blob.size / 1024)} KB)`;
    state.recording = blob;
  });
  state.recorder = recorder;
  changed();
}

export async function startLocal(config) {
  document.body.dataset.where = "device";
  $("processed").hidden = true;
  $("output").hidden = false;
  const params = new URLSearchParams(location.search);
  const width = Number(params.get("w")) || 1280;
  const height = Number(params.get("h")) || 720;
  setStatus("loading the model…");
  const models = (config.local && config.local.models) || [];
  const model = params.get("model") && models.includes(params.get("model")) ? params.get("model") : models[0];
  $("model").replaceChildren(...models.map((m) => new Option(m, m)));
  $("model").value = model;
  $("model").addEventListener("change", (e) => {
    const next = new URLSearchParams(location.search); next.set("model", e.target.value); location.search = next.toString();
  });
  const [segmenter, stream] = await Promise.all([
    createSegmenter(config.local, model),
    navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: width }, height: { ideal: height }, frameRate: { ideal: FPS } }, audio: false,
    }).catch((e) => { throw new Error(`cannot use the camera: ${e.name}: ${e.message}`); }),
  ]);
  state.runtime = segmenter.runtime; state.model = model;
  const video = $("local");
  video.srcObject = stream;
  await video.play().catch(() => {});
  const canvas = $("output");
  const decl = config.pipeline;
  if (!decl || !Array.isArray(decl.stages)) throw new Error("the server sent no pipeline declaration (GET /config)");
  state.declaration = decl;
  state.tuning = declaredSettings(decl);
  $("touch-up").value = state.tuning.touch_up ?? 0;
  $("light-wrap").value = state.tuning.light_wrap ?? 0;
  const pipeline = new GpuPipeline(canvas, decl);
  state.passes = pipeline.passes.map((st) => st.name);
  state.serverOnly = pipeline.serverOnly;
  $("server-only-stages").textContent = `server only (not on this device): ${pipeline.serverOnly.join(", ").replaceAll("_", " ")}`;
  pipeline.profile = params.has("profile");
  const slides = new Slides();
  const canvasStream = canvas.captureStream(FPS);
  state.stream = canvasStream;
  const publisher = new Publisher(canvasStream, showError);
  wire(pipeline, slides, publisher, canvasStream);
  publisher.start().then((s) => {
    state.token = s.token;
    const a = $("viewer-link");
    a.href = s.viewer; a.textContent = `${location.origin}${s.viewer}`;
    try { localStorage.setItem("backdrop-viewer-token", s.token); } catch (e) { /* private mode */ }
  }).catch((e) => showError(`viewers cannot watch: ${e.message || e}`));
  let box = null;
  // the person tracker, when the people stage has a pass here and its models are on the server
  const peopleStage = decl.stages.find((st) => st.name === "people" && st.web === "people");
  let tracker = null;
  if (peopleStage && (config.local.tracker || []).length) {
    const c = peopleStage.constants;
    const models = await createTrackerModels(segmenter, c.crop);
    const frame = { w: 0, h: 0 };
    tracker = new PeopleTracker(models, {
      letterbox: (size) => pipeline.warp.letterbox(pipeline.frameTex, frame.w, frame.h, size),
      crop: (r, size) => pipeline.warp.crop(pipeline.frameTex, frame.w, frame.h, r, size),
    }, c, Object.fromEntries(peopleStage.options.map((o) => [o.name, o.default])));
    tracker.frame = frame;
    state.tracker = tracker;
  }
  const step = async () => {
    const t0 = performance.now();
    const w = video.videoWidth; const h = video.videoHeight;
    if (w && h) {
      const s = state.settings;
      if (pipeline.profile) pipeline.sync();
      const t1 = performance.now();
      state.ms.wait = t1 - t0;
      const [iw, ih] = segmenter.inputSize;
      pipeline.uploadFrame(video, w, h);
      let tracks = [];
      if (tracker && s.roi) {
        const t2 = performance.now();
        tracker.frame.w = w; tracker.frame.h = h;
        tracks = await tracker.step(w, h);
        state.people = tracker.people;
        state.ms.tracker = performance.now() - t2;
      } else if (tracker) { tracker.reset(); state.people = []; }
      const t3 = performance.now();
      const crop = tracker && s.roi ? tracker.closeupBox(w, h) : null;
      const m = await segmenter.segment(pipeline.networkInput(iw, ih, cropUv(crop, w, h)));
      const found = personBox(m.mask, m.width, m.height, crop || [0, 0, w, h]);
      if (params.has("debug")) state.debug = { mask: m.mask, input: pipeline.lastInput };
      state.crop = crop;
      state.ms.segment = performance.now() - t3;
      Object.assign(state.ms, m.ms || {});
      if (s.kind === "presenter") {
        box = trackBox(box, found);
        s.place = presenterPlacement(box, w, h);
      }
      if (state.backgroundVideo && s.kind === "image" && state.backgroundVideo.readyState >= 2) {
        pipeline.setPicture(state.backgroundVideo, state.backgroundVideo.videoWidth, state.backgroundVideo.videoHeight);
      }
      pipeline.run(w, h, m.mask, m.width, m.height, s, tracks);
      Object.assign(state.ms, pipeline.ms);
      if (state.preview && state.preview.on) {
        state.preview.view.draw(canvas, canvas.width, canvas.height);
        const up = state.preview.view.stats().pass_ms_p50;
        if (up !== null) state.ms.upscale = up;
      } else delete state.ms.upscale;
      state.frames += 1;
      keep(state.times, performance.now() - t0);
      keep(state.history, { total: performance.now() - t0, ...state.ms }, 30);
      keep(state.stamps, performance.now(), 120);
      state.viewers = publisher.viewers.size;
    }
    video.requestVideoFrameCallback(() => step().catch((e) => { showError(String(e)); }));
  };
  video.requestVideoFrameCallback(() => step().catch((e) => showError(String(e))));
  setInterval(() => {
    const st = state.stats();
    const stages = Object.entries(st.stages_ms).map(([k, v]) => `${k} ${v}`).join(" · ");
    $("readout").textContent = `on this device: ${st.fps} fps, ${st.frame_ms_p50 ?? "–"} ms p50 / ` +
      `${st.frame_ms_p95 ?? "–"} ms p95 (${stages}) · ${st.runtime}`;
    publisher.report({ fps: st.fps, frame_ms_p50: st.frame_ms_p50 ?? 0, frames: st.frames });
  }, 1000);
  if (params.get("half") === "1") state.setHalfSize(true);
  if (params.get("upscale") === "1") state.setPreviewUpscale(true).catch((e) => showError(String(e)));
  setStatus(`processing on this device (${segmenter.runtime})`);
}
