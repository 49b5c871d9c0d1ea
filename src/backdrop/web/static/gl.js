// WebGL2 plumbing for the on-device pipeline: programs, float render targets, one full-screen
// triangle. Every pass (gl-*.js) is one small fragment shader run by `draw`; frames stay in GPU
// textures from the camera upload to the canvas, as in Meet's and Volcomix's WebGL2 pipelines.
"use strict";

const VERTEX = `#version 300 es
in vec2 pos;
out vec2 uv;
void main() { uv = pos * 0.5 + 0.5; gl_Position = vec4(pos, 0.0, 1.0); }`;

export const HEADER = "#version 300 es\nprecision highp float;\nprecision highp int;\nin vec2 uv;\nout vec4 outColor;\n";

export function createContext(canvas) {
  const gl = canvas.getContext("webgl2", {
    alpha: true, premultipliedAlpha: false, antialias: false, depth: false, stencil: false,
    preserveDrawingBuffer: false, desynchronized: true, powerPreference: "high-performance",
  });
  if (!gl) throw new Error("this browser has no WebGL2");
  if (!gl.getExtension("EXT_color_buffer_float")) throw new Error("WebGL2 here cannot render to float textures");
  gl.getExtension("OES_texture_float_linear");
  const buf = gl.createBuffer();
  gl.bindBuffer(gl.ARRAY_BUFFER, buf);
  gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 3, -1, -1, 3]), gl.STATIC_DRAW);
  const vao = gl.createVertexArray();
  gl.bindVertexArray(vao);
  gl.enableVertexAttribArray(0);
  gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
  gl.pixelStorei(gl.UNPACK_FLIP_Y_WEBGL, true); // uv (0,0) is the bottom-left everywhere
  return gl;
}

function compile(gl, type, src) {
  const sh = gl.createShader(type);
  gl.shaderSource(sh, src);
  gl.compileShader(sh);
  if (!gl.getShaderParameter(sh, gl.COMPILE_STATUS)) {
    throw new Error(`shader: ${gl.getShaderInfoLog(sh)}`);
  }
  return sh;
}

// Loop bounds and switches are compile-time #defines, never uniforms: software WebGL
// (SwiftShader) runs every iteration a uniform bound allows, masked, so a loop "up to 24" costs
// 24 texture fetches whatever the radius. Each set of defines is compiled once and kept.
const CACHE = new WeakMap();
export function variant(gl, fragment, defines = {}) {
  if (!CACHE.has(gl)) CACHE.set(gl, new Map());
  const cache = CACHE.get(gl);
  const head = Object.entries(defines).map(([k, v]) => `#define ${k} ${typeof v === "boolean" ? Number(v) : v}\n`).join("");
  const key = head + fragment;
  if (!cache.has(key)) cache.set(key, program(gl, fragment, head));
  return cache.get(key);
}

// `header` replaces HEADER for a shader with several outputs (gl-upscale.js: one layer of a
// network writes 8 or 16 channels at once, `layout(location = k) out vec4 ...` each)
export function program(gl, fragment, head = "", header = HEADER) {
  const p = gl.createProgram();
  gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, VERTEX));
  gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, header + head + fragment));
  gl.bindAttribLocation(p, 0, "pos");
  gl.linkProgram(p);
  if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(`link: ${gl.getProgramInfoLog(p)}`);
  const uniforms = {};
  const n = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
  for (let i = 0; i < n; i += 1) {
    const info = gl.getActiveUniform(p, i);
    uniforms[info.name.replace(/\[0\]$/, "")] = { loc: gl.getUniformLocation(p, info.name), type: info.type };
  }
  return { p, uniforms };
}

const FORMATS = {
  rgba8: ["RGBA8", "RGBA", "UNSIGNED_BYTE"],
  rgba16f: ["RGBA16F", "RGBA", "HALF_FLOAT"],
  rgba32f: ["RGBA32F", "RGBA", "FLOAT"],
  r32f: ["R32F", "RED", "FLOAT"],
  r16f: ["R16F", "RED", "FLOAT"],   // a Float32Array upload into a filterable half-float texture
};

export function texture(gl, width, height, format = "rgba8", filter = "linear") {
  const [internal, fmt, type] = FORMATS[format].map((k) => gl[k]);
  const tex = gl.createTexture();
  gl.bindTexture(gl.TEXTURE_2D, tex);
  gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, fmt, type, null);
  const f = filter === "linear" ? gl.LINEAR : gl.NEAREST;
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, f);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, f);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
  return { tex, width, height, format };
}

// A texture to draw into. Kept by size and format; resized when the camera's size changes.
export function target(gl, width, height, format = "rgba8", filter = "linear") {
  const t = texture(gl, width, height, format, filter);
  t.fbo = gl.createFramebuffer();
  gl.bindFramebuffer(gl.FRAMEBUFFER, t.fbo);
  gl.framebufferTexture2D(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.TEXTURE_2D, t.tex, 0);
  const ok = gl.checkFramebufferStatus(gl.FRAMEBUFFER) === gl.FRAMEBUFFER_COMPLETE;
  gl.bindFramebuffer(gl.FRAMEBUFFER, null);
  if (!ok) throw new Error(`cannot render to a ${format} texture here`);
  return t;
}

export function release(gl, t) {
  if (!t) return;
  gl.deleteTexture(t.tex);
  if (t.fbo) gl.deleteFramebuffer(t.fbo);
}

// Upload a <video>, <canvas>, ImageBitmap or a typed array into `t` (created or resized as needed).
export function upload(gl, t, source, width, height, format = "rgba8") {
  if (!t || t.width !== width || t.height !== height || t.format !== format) {
    release(gl, t);
    t = texture(gl, width, height, format);
  }
  gl.bindTexture(gl.TEXTURE_2D, t.tex);
  const [internal, fmt, type] = FORMATS[format].map((k) => gl[k]);
  if (ArrayBuffer.isView(source)) {
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, width, height, 0, fmt, type, source);
  } else {
    gl.texImage2D(gl.TEXTURE_2D, 0, internal, fmt, type, source);
  }
  return t;
}

// Run program `prog` into `out` (a target, or null for the canvas) with `inputs`:
// {name: texture | number | [numbers]}; textures bind to units in order.
export function draw(gl, prog, out, inputs) {
  gl.useProgram(prog.p);
  let unit = 0;
  for (const [name, value] of Object.entries(inputs)) {
    const u = prog.uniforms[name];
    if (!u) continue; // optimised away by the compiler
    if (value && value.tex) {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, value.tex);
      gl.uniform1i(u.loc, unit);
      unit += 1;
    } else if (typeof value === "number" || typeof value === "boolean") {
      if (u.type === gl.INT || u.type === gl.BOOL) gl.uniform1i(u.loc, Number(value));
      else gl.uniform1f(u.loc, value);
    } else if (Array.isArray(value)) {
      [null, gl.uniform1fv, gl.uniform2fv, gl.uniform3fv, gl.uniform4fv][value.length].call(gl, u.loc, value);
    }
  }
  if (out) {
    gl.bindFramebuffer(gl.FRAMEBUFFER, out.fbo);
    gl.viewport(0, 0, out.width, out.height);
  } else {
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    gl.viewport(0, 0, gl.drawingBufferWidth, gl.drawingBufferHeight);
  }
  gl.drawArrays(gl.TRIANGLES, 0, 3);
}

// Targets by role, made again only when a size changes (a camera switch, a new resolution).
export class Targets {
  constructor(gl) { this.gl = gl; this.items = {}; }
  get(name, width, height, format = "rgba8", filter = "linear") {
    const t = this.items[name];
    if (t && t.width === width && t.height === height && t.format === format) return t;
    release(this.gl, t);
    this.items[name] = target(this.gl, width, height, format, filter);
    return this.items[name];
  }
  drop(name) { release(this.gl, this.items[name]); delete this.items[name]; }
}
