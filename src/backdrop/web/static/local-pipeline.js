// The on-device pipeline on the GPU, one pass per Python stage and in the same order
// (stages/__init__.py): network matte -> temporal fusion -> guided refinement -> (person-free
// room blur) -> touch-up -> light wrap -> compose. Nothing is read back: the camera frame goes
// in as a texture, the result is drawn into the page's canvas.
"use strict";
import { createContext, Targets, upload } from "./gl.js";
import { makeTemporal } from "./gl-temporal.js";
import { makeRefine } from "./gl-refine.js";
import { makeBlur } from "./gl-blur.js";
import { makeWrap } from "./gl-wrap.js";
import { makeTouchUp } from "./gl-touchup.js";
import { makeCompose } from "./gl-compose.js";
import { fitPicture } from "./gl-background.js";

export const WORK_SIZE = 512;   // long side of the working matte, as --work-size

export class GpuPipeline {
  constructor(canvas) {
    this.canvas = canvas;
    this.gl = createContext(canvas);
    const gl = this.gl;
    this.targets = new Targets(gl);
    this.temporal = makeTemporal(gl);
    this.refine = makeRefine(gl, this.targets);
    this.blur = makeBlur(gl, this.targets);
    this.wrap = makeWrap(gl, this.targets);
    this.touchUp = makeTouchUp(gl, this.targets);
    this.compose = makeCompose(gl);
    this.frameTex = null; this.maskTex = null; this.pictureTex = null; this.picture = null;
    this.flip = 0; this.first = true;
    this.ms = {};
  }

  reset() { this.first = true; }

  setPicture(source, width, height) {
    // an uploaded image, a video frame or a rendered slide; stays on the GPU until replaced
    this.pictureTex = upload(this.gl, this.pictureTex, source, width, height);
    this.picture = { width, height };
  }

  // frame: <video> (or any texImage2D source) of size w x h; mask: Float32Array maskW x maskH
  run(frame, w, h, mask, maskW, maskH, s) {
    const gl = this.gl;
    const t = performance.now();
    const lap = (name, t0) => { this.ms[name] = performance.now() - t0; return performance.now(); };
    this.maskTex = upload(gl, this.maskTex, mask, maskW, maskH, "r16f");
    this.frameTex = upload(gl, this.frameTex, frame, w, h);
    let t0 = lap("upload", t);
    const scale = WORK_SIZE / Math.max(w, h);
    const ww = Math.max(8, Math.round(w * scale)); const wh = Math.max(8, Math.round(h * scale));
    const names = ["temporal-a", "temporal-b"];
    const out = this.targets.get(names[this.flip], ww, wh, "rgba16f");
    const past = this.first ? null : this.targets.get(names[1 - this.flip], ww, wh, "rgba16f");
    this.temporal(this.maskTex, this.frameTex, past, out, { strength: s.temporal, first: this.first });
    this.flip = 1 - this.flip; this.first = false;
    t0 = lap("temporal", t0);
    const coeffs = s.refine ? this.refine(out) : out;
    t0 = lap("refine", t0);
    const bg = { kind: s.kind, colour: s.colourRgb, maxLod: 0 };
    let room = null;
    if (s.effect && (s.kind === "blur" || s.decontaminate)) {
      room = this.blur(this.frameTex, coeffs, s.refine, w, h, s.kind === "blur" ? s.blur : 4);
      if (s.kind === "blur") { bg.blurred = room; bg.maxLod = room.maxLod; }
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
    const touch = s.effect && s.touchUp > 0 ? this.touchUp(this.frameTex, w, h) : null;
    t0 = lap("touch_up", t0);
    const wrap = s.effect && s.lightWrap > 0 && s.kind !== "presenter" && s.kind !== "transparent"
      ? this.wrap(this.frameTex, coeffs, s.refine, bg, w, h) : null;
    t0 = lap("light_wrap", t0);
    if (this.canvas.width !== outW || this.canvas.height !== outH) {
      this.canvas.width = outW; this.canvas.height = outH;
    }
    this.compose({ frameTex: this.frameTex, touch, touchUp: s.touchUp, coeffs, refine: s.refine, bg, room, wrap,
      wrapStrength: s.lightWrap, effect: s.effect, decontaminate: s.decontaminate,
      place: place ? place(outW, outH) : null, outW, outH, frameW: w, frameH: h });
    gl.flush();
    lap("compose", t0);
    return performance.now() - t;
  }
}
