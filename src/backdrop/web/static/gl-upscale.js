// x2 super-resolution in the page: Backdrop's own sr-x2 network (backdrop/models/weights, made by
// `backdrop train sr`) as WebGL2 passes. A video (or canvas) texture goes in, a texture or the
// canvas comes out; no frame is read back. The network is ESPCN's shape on luma: a few 3x3
// convolutions at the small size (one pass each, 8 or 16 channels written at once into RGBA16F
// textures), then one full-size pass that adds the pixel-shuffled residual to the texture unit's
// bilinear upscale of the frame, equally on R, G and B (x 255/219: a change of BT.601 luma that
// leaves the colour alone). Python does the same (superres/frames.py), so the two agree.
//
// Exact borders: the network's convolutions are unpadded and the frame is padded once by edge
// replication; here layer k's texture is larger than the frame by (layers - k) pixels a side,
// and only the first pass clamps its reads, which is the same thing.
// Weights come from the server as JSON (/upscale/weights.json, made from the shipped .npz) and
// live in one uniform block per layer: one mat4 per tap and per 4 input x 4 output channels.
"use strict";
import { createContext, draw, program, release, texture, upload } from "./gl.js";

const STEP = 255 / 219;  // RGB change that moves BT.601 limited-range luma by one unit
const MEASURE_EVERY = 10;  // without a GPU timer, every 10th frame is timed with fences

export async function fetchWeights(url = "/upscale/weights.json") {
  const res = await fetch(url, { cache: "no-store" });
  if (!res.ok) throw new Error(`the upscale weights are not available (${res.status})`);
  return res.json();
}

function header(outs) {
  let h = "#version 300 es\nprecision highp float;\nprecision highp int;\nin vec2 uv;\n";
  for (let k = 0; k < outs; k += 1) h += `layout(location = ${k}) out vec4 o${k};\n`;
  return h;
}

// GLSL of layer `l` of `n`, unrolled in JS (sampler arrays cannot be indexed by a loop variable in
// GLSL ES 3.00, and software WebGL runs unrolled code fastest).
function layerSource(l, n, cin, cout) {
  const gi = cin === 1 ? 1 : cin / 4; const go = cout / 4; const radius = n;
  const src = [`layout(std140) uniform Layer${l} { ${cin === 1 ? "vec4" : "mat4"} W[${9 * gi * go}]; vec4 B[${go}]; };`];
  for (let g = 0; g < gi; g += 1) src.push(`uniform highp sampler2D src${g};`);
  src.push("uniform vec2 size;  // the frame's, for the first layer's clamped reads", "void main() {",
    "  ivec2 p = ivec2(gl_FragCoord.xy);");
  for (let o = 0; o < go; o += 1) src.push(`  vec4 a${o} = B[${o}];`);
  let t = 0;
  for (let ky = 0; ky < 3; ky += 1) {
    for (let kx = 0; kx < 3; kx += 1, t += 1) {
      const dx = kx - 1; const dy = 1 - ky;  // image rows go down, texture rows up (UNPACK_FLIP_Y)
      if (l === 0) {
        const q = `p + ivec2(${dx - (radius - 1)}, ${dy - (radius - 1)})`;
        src.push(`  { float y = dot(texelFetch(src0, clamp(${q}, ivec2(0), ivec2(size) - 1), 0).rgb, ` +
          `vec3(65.481, 128.553, 24.966) / 255.0) + 16.0 / 255.0;`);
        for (let o = 0; o < go; o += 1) src.push(`    a${o} += y * W[${t * go + o}];`);
      } else {
        for (let g = 0; g < gi; g += 1) {
          src.push(`  { vec4 v = texelFetch(src${g}, p + ivec2(${dx + 1}, ${dy + 1}), 0);`);
          for (let o = 0; o < go; o += 1) src.push(`    a${o} += W[${(t * gi + g) * go + o}] * v;`);
          if (g < gi - 1) src.push("  }");
        }
      }
      src.push("  }");
    }
  }
  for (let o = 0; o < go; o += 1) src.push(`  o${o} = ${l === n - 1 ? `a${o}` : `max(a${o}, 0.0)`};`);
  src.push("}");
  return src.join("\n");
}

// std140 contents of one layer's block from the OIHW weights
function layerBlock(layer) {
  const { in: cin, out: cout, weights: w, bias } = layer;
  const gi = cin === 1 ? 1 : cin / 4; const go = cout / 4;
  const at = (o, i, ky, kx) => w[((o * cin + i) * 3 + ky) * 3 + kx];
  const data = [];
  for (let t = 0; t < 9; t += 1) {
    const ky = Math.floor(t / 3); const kx = t % 3;
    for (let g = 0; g < gi; g += 1) {
      for (let o = 0; o < go; o += 1) {
        if (cin === 1) { for (let r = 0; r < 4; r += 1) data.push(at(4 * o + r, 0, ky, kx)); continue; }
        for (let c = 0; c < 4; c += 1) for (let r = 0; r < 4; r += 1) data.push(at(4 * o + r, 4 * g + c, ky, kx));
      }
    }
  }
  for (const b of bias) data.push(b);
  return new Float32Array(data);
}

const FINAL = `
uniform sampler2D frame;   // the frame, linear filtering: the bilinear x2
uniform highp sampler2D res;  // the last layer: one residual per 2x2 sub-pixel (image rows down)
uniform vec2 outSize;
void main() {
  ivec2 q = ivec2(gl_FragCoord.xy);
  vec4 r = texelFetch(res, q / 2, 0);
  int k = 2 * (1 - (q.y & 1)) + (q.x & 1);
  float d = k == 0 ? r.x : k == 1 ? r.y : k == 2 ? r.z : r.w;
  outColor = vec4(texture(frame, gl_FragCoord.xy / outSize).rgb + d * ${STEP.toFixed(7)}, 1.0);
}`;

export class GlUpscaler {
  constructor(gl, weights) {
    this.gl = gl; this.weights = weights;
    const n = weights.layers.length;
    for (const L of weights.layers) {
      if ((L.in !== 1 && L.in % 4) || L.out % 4) throw new Error("upscale: channel counts must be 1 or multiples of 4");
    }
    this.layers = weights.layers.map((L, l) => {
      const prog = program(gl, layerSource(l, n, L.in, L.out), "", header(L.out / 4));
      const block = gl.getUniformBlockIndex(prog.p, `Layer${l}`);
      gl.uniformBlockBinding(prog.p, block, l);
      const ubo = gl.createBuffer();
      gl.bindBuffer(gl.UNIFORM_BUFFER, ubo);
      gl.bufferData(gl.UNIFORM_BUFFER, layerBlock(L), gl.STATIC_DRAW);
      return { prog, ubo, outs: L.out / 4, target: null };
    });
    gl.bindBuffer(gl.UNIFORM_BUFFER, null);
    this.final = program(gl, FINAL);
    this.timer = gl.getExtension("EXT_disjoint_timer_query_webgl2");
    this.queries = []; this.frames = 0; this.fencing = false;
    this.times = [];  // recent pass times, ms (GPU timer, or submit -> fence signalled)
  }

  // MRT target of `outs` RGBA16F textures, w x h (kept until the size changes)
  targetFor(layer, w, h) {
    const gl = this.gl;
    const t = layer.target;
    if (t && t.width === w && t.height === h) return t;
    if (t) { t.texs.forEach((x) => release(gl, x)); gl.deleteFramebuffer(t.fbo); }
    const texs = Array.from({ length: layer.outs }, () => texture(gl, w, h, "rgba16f", "nearest"));
    const fbo = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, fbo);
    texs.forEach((x, k) => gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0 + k, gl.TEXTURE_2D, x.tex, 0));
    gl.drawBuffers(texs.map((_, k) => gl.COLOR_ATTACHMENT0 + k));
    const ok = gl.checkFramebufferStatus(gl.FRAMEBUFFER) === gl.FRAMEBUFFER_COMPLETE;
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    if (!ok) throw new Error("upscale: cannot render to half-float textures here");
    layer.target = { texs, fbo, width: w, height: h };
    return layer.target;
  }

  // frameTex (w x h, linear filtering) -> out (a target of 2w x 2h, or null: the canvas)
  run(frameTex, w, h, out = null) {
    const gl = this.gl;
    const n = this.layers.length;
    const timing = this.timer ? this.startQuery() : this.startFence();
    let inputs = [frameTex];
    this.layers.forEach((layer, l) => {
      const m = n - 1 - l;  // pixels of margin a side this layer's output keeps
      const t = this.targetFor(layer, w + 2 * m, h + 2 * m);
      gl.bindBufferBase(gl.UNIFORM_BUFFER, l, layer.ubo);
      draw(gl, layer.prog, t, { ...Object.fromEntries(inputs.map((x, g) => [`src${g}`, x])), size: [w, h] });
      inputs = t.texs;
    });
    draw(gl, this.final, out, { frame: frameTex, res: inputs[0], outSize: [2 * w, 2 * h] });
    if (timing) timing();
    this.frames += 1;
  }

  startQuery() {
    const gl = this.gl; const ext = this.timer;
    while (this.queries.length && gl.getQueryParameter(this.queries[0], gl.QUERY_RESULT_AVAILABLE)) {
      const q = this.queries.shift();
      if (!gl.getParameter(ext.GPU_DISJOINT_EXT)) this.keep(gl.getQueryParameter(q, gl.QUERY_RESULT) / 1e6);
      gl.deleteQuery(q);
    }
    if (this.queries.length > 4) return null;
    const q = gl.createQuery();
    gl.beginQuery(ext.TIME_ELAPSED_EXT, q);
    return () => { gl.endQuery(ext.TIME_ELAPSED_EXT); this.queries.push(q); };
  }

  // no GPU timer (software WebGL, most browsers): every MEASURE_EVERY-th frame, the time from a
  // fence before the passes signalling to a fence after them signalling, polled from the event loop
  startFence() {
    if (this.fencing || this.frames % MEASURE_EVERY) return null;
    const gl = this.gl;
    this.fencing = true;
    const before = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
    gl.flush();
    return () => {
      const after = gl.fenceSync(gl.SYNC_GPU_COMMANDS_COMPLETE, 0);
      gl.flush();
      let t0 = null;
      const poll = () => {
        const now = performance.now();
        if (t0 === null && gl.getSyncParameter(before, gl.SYNC_STATUS) === gl.SIGNALED) t0 = now;
        if (t0 !== null && gl.getSyncParameter(after, gl.SYNC_STATUS) === gl.SIGNALED) {
          this.keep(now - t0); gl.deleteSync(before); gl.deleteSync(after); this.fencing = false;
          return;
        }
        setTimeout(poll, 1);
      };
      setTimeout(poll, 0);
    };
  }

  keep(ms) { this.times.push(ms); if (this.times.length > 60) this.times.shift(); }

  stats() {
    const s = [...this.times].sort((a, b) => a - b);
    const q = (f) => (s.length ? Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))] * 10) / 10 : null);
    return { pass_ms_p50: q(0.5), pass_ms_p95: q(0.95), measured: s.length,
      timer: this.timer ? "EXT_disjoint_timer_query_webgl2" : "fences" };
  }
}

// A <canvas> that shows a <video> or <canvas> element x2 through the network (the viewer page and
// the local preview): its own WebGL2 context, the element uploaded as a texture each frame.
export class UpscaleView {
  constructor(canvas, weights) {
    this.canvas = canvas;
    this.gl = createContext(canvas);
    this.up = new GlUpscaler(this.gl, weights);
    this.tex = null; this.size = null;
  }

  draw(source, w, h) {
    if (!w || !h) return false;
    if (this.canvas.width !== 2 * w || this.canvas.height !== 2 * h) { this.canvas.width = 2 * w; this.canvas.height = 2 * h; }
    this.tex = upload(this.gl, this.tex, source, w, h);
    this.up.run(this.tex, w, h, null);
    this.size = { in: [w, h], out: [2 * w, 2 * h] };
    return true;
  }

  stats() { return { ...this.up.stats(), ...(this.size || {}), frames: this.up.frames }; }
}
