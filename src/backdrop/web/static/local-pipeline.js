// The on-device pipeline on the GPU: one pass per Python stage, in the order the server declares
// (GET /config "pipeline", made from stages/__init__.py's STAGES by engine/declaration.py): network
// matte -> temporal fusion -> guided refinement -> decontamination (the person-free room blur) ->
// touch-up -> relight -> light wrap -> compose. The pass list, the option defaults and the constants the
// shaders share with Python (temporal's motion thresholds, the guided filter's radius and eps)
// all come from that declaration; a declared stage with no pass here is listed as server-only.
// Nothing is read back: the camera frame goes in as a texture, the result is drawn into the
// page's canvas.
"use strict";
import { createContext, Targets, upload } from "./gl.js";
import { makeTemporal } from "./gl-temporal.js";
import { makeRefine } from "./gl-refine.js";
import { makeBlur } from "./gl-blur.js";
import { makeWrap } from "./gl-wrap.js";
import { makeTouchUp } from "./gl-touchup.js";
import { makeRelight } from "./gl-relight.js";
import { makeCompose } from "./gl-compose.js";
import { makeInput } from "./gl-input.js";
import { makeWarp } from "./gl-warp.js";
import { makePeople } from "./gl-people.js";
import { fitPicture } from "./gl-background.js";

// long side of the working matte. The Python default is 512; in the browser 256 (the network's
// own resolution) with the guided filter's radius scaled by 256/512 covers the same area for a
// quarter of the texture fetches, which is what software WebGL pays for (docs/benchmarks.md)
export const WORK_SIZE = 256;

// the page's passes by the name a stage declares in `web=` (roi runs before the network, in local.js)
const PASSES = {
  // the person tracker runs before the network (local.js, people.js); here its masks are pasted
  people(p, ctx, s, c) {
    if (!s.roi || !ctx.tracks.length) return;
    ctx.mask = p.people(ctx.tracks, ctx.mask, ctx.crop, ctx.w, ctx.h, ctx.ww, ctx.wh, c);
    ctx.crop = [0, 0, 1, 1];
  },
  temporal(p, ctx, s, c) {
    const names = ["temporal-a", "temporal-b"];
    const out = p.targets.get(names[p.flip], ctx.ww, ctx.wh, "rgba16f");
    const past = p.first ? null : p.targets.get(names[1 - p.flip], ctx.ww, ctx.wh, "rgba16f");
    p.temporal(ctx.mask, p.frameTex, ctx.w, ctx.h, past, out,
      { strength: s.temporal, first: p.first, crop: ctx.crop, constants: c });
    p.flip = 1 - p.flip; p.first = false;
    ctx.matte = out;
  },
  refine(p, ctx, s, c, decl) {
    if (!s.refine || s.refine === "bilinear") return;
    const scale = WORK_SIZE / decl.work_size;  // the declared sizes are the server's working pixels
    ctx.coeffs = p.refine(ctx.matte, { radius: c.radius * scale, eps: c.eps, reach: c.reach == null ? -1 : c.reach * scale });
    ctx.refined = true;
  },
  decontaminate(p, ctx, s) {
    ctx.decontaminate = Boolean(s.decontaminate);
  },
  touch_up(p, ctx, s) {
    if (s.effect && s.touch_up > 0) ctx.touch = p.touchUp(p.frameTex, ctx.w, ctx.h);
  },
  relight(p, ctx, s, c) {  // the work is done once the background is known (below)
    const k = s.relight;  // the slider, which starts from --colour-match when the server was given that old name
    if (s.effect && k > 0) ctx.relight = { strength: k, constants: c };
  },
  light_wrap(p, ctx, s) {
    if (s.effect && s.light_wrap > 0 && s.kind !== "presenter" && s.kind !== "transparent") ctx.wrapWanted = true;
  },
};

// the passes this page runs, in the declared order, and the declared stages it cannot run
export function passList(decl) {
  const run = []; const serverOnly = [];
  for (const st of decl.stages) {
    if (st.web && st.web in PASSES) run.push(st);
    else serverOnly.push(st.name);
  }
  return { run, serverOnly };
}

// the settings the page starts from: every declared option's value (the server's, else the default)
export function declaredSettings(decl) {
  const out = {};
  for (const st of decl.stages) for (const o of st.options) out[o.name] = o.default;
  return out;
}

export class GpuPipeline {
  constructor(canvas, decl) {
    this.canvas = canvas;
    this.decl = decl;
    const { run, serverOnly } = passList(decl);
    this.passes = run; this.serverOnly = serverOnly;
    this.gl = createContext(canvas);
    const gl = this.gl;
    this.targets = new Targets(gl);
    this.temporal = makeTemporal(gl, this.targets);
    this.refine = makeRefine(gl, this.targets);
    this.blur = makeBlur(gl, this.targets);
    this.wrap = makeWrap(gl, this.targets);
    this.touchUp = makeTouchUp(gl, this.targets);
    this.relight = makeRelight(gl, this.targets);
    this.compose = makeCompose(gl);
    this.input = makeInput(gl, this.targets);
    this.warp = makeWarp(gl, this.targets);
    this.people = makePeople(gl, this.targets);
    this.frameTex = null; this.maskTex = null; this.pictureTex = null; this.picture = null;
    this.flip = 0; this.first = true;
    this.ms = {};
  }

  reset() { this.first = true; this.relight.reset(); }

  // wait for the GPU: a one-pixel read-back (Chrome's finish() does not wait for SwiftShader)
  sync() {
    const px = new Uint8Array(4);
    this.gl.bindFramebuffer(this.gl.FRAMEBUFFER, null);
    this.gl.readPixels(0, 0, 1, 1, this.gl.RGBA, this.gl.UNSIGNED_BYTE, px);
  }

  setPicture(source, width, height) {
    // an uploaded image, a video frame or a rendered slide; stays on the GPU until replaced
    this.pictureTex = upload(this.gl, this.pictureTex, source, width, height);
    if (source !== this.pictureSource) this.pictureCount = (this.pictureCount || 0) + 1;  // a new picture, not a video's next frame
    this.pictureSource = source;
    this.picture = { width, height };
  }

  // the camera frame (a <video> or any texImage2D source, w x h) into its texture, and the
  // network's input (RGBA bytes, iw x ih, top row first) made from it
  // (crop: the ROI in frame uv, y down, from roi.js; the mask then covers that crop only)
  takeFrame(frame, w, h, iw, ih, crop = [0, 0, 1, 1]) {
    this.uploadFrame(frame, w, h);
    return this.networkInput(iw, ih, crop);
  }

  uploadFrame(frame, w, h) {
    this.frameTex = upload(this.gl, this.frameTex, frame, w, h);
    this.frameSize = [w, h];
  }

  networkInput(iw, ih, crop = [0, 0, 1, 1]) {
    const t0 = performance.now();
    this.crop = crop;
    const out = this.input(this.frameTex, this.frameSize[0], this.frameSize[1], iw, ih, crop);
    this.lastInput = out;
    this.ms.input = performance.now() - t0;
    return out;
  }

  // after takeFrame: mask is the network's Float32Array (maskW x maskH), s the settings
  run(w, h, mask, maskW, maskH, s, tracks = []) {
    const gl = this.gl;
    const t = performance.now();
    // with ?profile the GPU finishes each pass before the clock is read: true per-pass costs, at
    // the price of the overlap of CPU and GPU work (so only for measuring)
    const lap = (name, t0) => {
      if (this.profile) this.sync();
      this.ms[name] = performance.now() - t0;
      return performance.now();
    };
    this.maskTex = upload(gl, this.maskTex, mask, maskW, maskH, "r16f");
    let t0 = lap("upload", t);
    const scale = WORK_SIZE / Math.max(w, h);
    const ctx = { w, h, ww: Math.max(8, Math.round(w * scale)), wh: Math.max(8, Math.round(h * scale)),
      mask: this.maskTex, crop: this.crop, tracks, matte: null, coeffs: null, refined: false, decontaminate: false,
      touch: null, wrapWanted: false, relight: null };
    for (const st of this.passes) {
      const pass = PASSES[st.web];
      if (!pass) continue;
      pass(this, ctx, s, st.constants, this.decl);
      t0 = lap(st.name, t0);
    }
    if (!ctx.matte) {  // no temporal pass declared: the mask still has to reach working size (strength 0)
      const st = this.decl.stages.find((x) => x.name === "temporal");
      PASSES.temporal(this, ctx, { ...s, temporal: 0 }, st ? st.constants : {}, this.decl);
    }
    const coeffs = ctx.refined ? ctx.coeffs : ctx.matte;
    const refine = ctx.refined;
    const bg = { kind: s.kind, colour: s.colourRgb, coarseLod: 0 };
    let room = null;
    if (s.effect && (s.kind === "blur" || ctx.decontaminate)) {
      // a blur background is the room estimate too; otherwise a coarse one (long side ~160)
      room = s.kind === "blur" ? this.blur(this.frameTex, coeffs, refine, w, h, s.blur)
        : this.blur(this.frameTex, coeffs, refine, w, h, 4, Math.max(1, Math.round(Math.max(w, h) / 160)));
      if (s.kind === "blur") { bg.blurred = room; bg.coarseLod = room.coarseLod; }
    }
    t0 = lap("blur", t0);
    let outW = w; let outH = h; let place = null;
    if ((s.kind === "image" || s.kind === "presenter") && this.pictureTex) {
      bg.picture = this.pictureTex;
      if (s.kind === "presenter") {
        outH = h; outW = Math.round(h * this.picture.width / this.picture.height / 2) * 2;
        place = s.place;
      }
      bg.fit = fitPicture(this.picture.width, this.picture.height, outW, outH, s.kind === "presenter");
    } else if (s.kind === "image" || s.kind === "presenter") {
      bg.kind = "colour"; bg.colour = [16 / 255, 16 / 255, 16 / 255];
    }
    const touch = ctx.touch;
    const wrap = ctx.wrapWanted ? this.wrap(this.frameTex, coeffs, refine, bg, w, h) : null;
    t0 = lap("light_wrap", t0);
    let relight = null;
    if (ctx.relight) {  // taken at once when the background changes (kind, colour, blur, picture)
      const c = ctx.relight.constants;
      const key = [bg.kind, String(bg.colour), s.blur, this.pictureCount || 0].join("|");
      relight = this.relight(this.frameTex, coeffs, refine, bg, w, h, ctx.relight.strength, c, key !== this.relightKey);
      relight.denoise = [c.denoise_from, c.denoise_sigma, c.denoise_space];
      this.relightKey = key;
      t0 = lap("relight", t0);
    }
    if (this.canvas.width !== outW || this.canvas.height !== outH) {
      this.canvas.width = outW; this.canvas.height = outH;
    }
    this.compose({ frameTex: this.frameTex, touch, touchUp: s.touch_up, coeffs, refine, bg, room, wrap,
      wrapStrength: s.light_wrap, effect: s.effect, decontaminate: ctx.decontaminate,
      place: place ? place(outW, outH) : null, outW, outH, frameW: w, frameH: h, relight });
    gl.flush();
    lap("compose", t0);
    return performance.now() - t;
  }
}
