// Touch-up (skin smoothing), the algorithm of stages/touch_up.py in shaders: at the processing
// size P (short side at most 1080), a mid-scale bilateral at min(half, 360 px) (sigma_colour 40) adds its
// change to P, a fine bilateral (13-tap disc of radius 2, sigma_space 2.5, sigma_colour 30 on the
// L1 colour distance) follows, and the change P2 - P is weighted by the Chai & Ngan skin range
// (YCrCb, soft bounds) and a texture gate (7x7 gradient energy over brightness: hair stays).
// Returns the change W at size P; the compose pass adds strength * alpha * W to the person.
"use strict";
import { program, draw } from "./gl.js";

const BILATERAL = `
const vec2 TAPS[13] = vec2[13](vec2(0,-2), vec2(-1,-1), vec2(0,-1), vec2(1,-1), vec2(-2,0), vec2(-1,0),
  vec2(0,0), vec2(1,0), vec2(2,0), vec2(-1,1), vec2(0,1), vec2(1,1), vec2(0,2));
float spaceWeight(vec2 o) { return exp(-dot(o, o) / (2.0 * 2.5 * 2.5)); }
float colourWeight(vec3 a, vec3 b, float sigma) {
  vec3 d = abs(a - b); float c = d.r + d.g + d.b;
  return exp(-c * c / (2.0 * sigma * sigma));
}`;

// half-size mid scale: bilateral(M, 40) - M, M the frame averaged to this size (0..255 units)
const MID = BILATERAL + `
uniform sampler2D frame;
uniform vec2 texel;
void main() {
  vec3 c = texture(frame, uv).rgb * 255.0;
  vec3 acc = vec3(0.0); float wsum = 0.0;
  for (int k = 0; k < 13; k++) {
    vec3 q = texture(frame, uv + TAPS[k] * texel).rgb * 255.0;
    float w = spaceWeight(TAPS[k]) * colourWeight(c, q, 40.0);
    acc += w * q; wsum += w;
  }
  outColor = vec4(acc / wsum - c, 1.0);
}`;

// texture gate source at size P: (g = |dY/dx| + |dY/dy| central differences, Y), 0..255
const GATE_SRC = `
uniform sampler2D frame;
uniform vec2 texel;
float Y(vec2 p) { return dot(texture(frame, p).rgb, vec3(0.299, 0.587, 0.114)) * 255.0; }
void main() {
  float g = abs(Y(uv + vec2(texel.x, 0.0)) - Y(uv - vec2(texel.x, 0.0)))
          + abs(Y(uv + vec2(0.0, texel.y)) - Y(uv - vec2(0.0, texel.y)));
  outColor = vec4(g, Y(uv), 0.0, 1.0);
}`;

const BOX7 = `
uniform sampler2D src;
uniform vec2 step;
void main() {
  vec4 acc = vec4(0.0);
  for (int k = -3; k <= 3; k++) acc += texture(src, uv + float(k) * step);
  outColor = acc / 7.0;
}`;

const FINE = BILATERAL + `
uniform sampler2D frame;
uniform sampler2D mid;       // half-size change of the mid scale, upsampled bilinearly
uniform sampler2D gate;      // box7 of (g, Y)
uniform vec2 texel;
vec3 P1(vec2 p) { return clamp(texture(frame, p).rgb * 255.0 + texture(mid, p).rgb, 0.0, 255.0); }
float ramp(float v, float lo, float hi) { return clamp((v - lo) / 8.0 + 0.5, 0.0, 1.0) * clamp((hi - v) / 8.0 + 0.5, 0.0, 1.0); }
void main() {
  vec3 c = P1(uv);
  vec3 acc = vec3(0.0); float wsum = 0.0;
  for (int k = 0; k < 13; k++) {
    vec3 q = P1(uv + TAPS[k] * texel);
    float w = spaceWeight(TAPS[k]) * colourWeight(c, q, 30.0);
    acc += w * q; wsum += w;
  }
  vec3 p2 = acc / wsum;
  float y = dot(p2, vec3(0.299, 0.587, 0.114));
  float cr = 0.713 * (p2.r - y) + 128.0; float cb = 0.564 * (p2.b - y) + 128.0;
  float skin = ramp(cr, 133.0, 173.0) * ramp(cb, 77.0, 127.0);
  vec2 ge = texture(gate, uv).rg;
  float g = 1.0 - smoothstep(0.1, 0.3, ge.x / (ge.y + 16.0));
  outColor = vec4(skin * g * (p2 - texture(frame, uv).rgb * 255.0) / 255.0, 1.0);
}`;

export function makeTouchUp(gl, targets) {
  const mid = program(gl, MID);
  const gateSrc = program(gl, GATE_SRC);
  const box = program(gl, BOX7);
  const fine = program(gl, FINE);
  return (frameTex, w, h) => {
    const s = Math.min(1, 1080 / Math.min(w, h));
    const pw = Math.max(1, Math.round(w * s)); const ph = Math.max(1, Math.round(h * s));
    const m = Math.min(0.5, 360 / Math.min(pw, ph));
    const mw = Math.max(1, Math.round(pw * m)); const mh = Math.max(1, Math.round(ph * m));
    const mid_ = targets.get("touch-mid", mw, mh, "rgba16f");
    const g0 = targets.get("touch-gate-src", pw, ph, "rgba16f");
    const g1 = targets.get("touch-gate-x", pw, ph, "rgba16f");
    const g2 = targets.get("touch-gate", pw, ph, "rgba16f");
    const out = targets.get("touch-change", pw, ph, "rgba16f");
    draw(gl, mid, mid_, { frame: frameTex, texel: [1 / mw, 1 / mh] });
    draw(gl, gateSrc, g0, { frame: frameTex, texel: [1 / pw, 1 / ph] });
    draw(gl, box, g1, { src: g0, step: [1 / pw, 0] });
    draw(gl, box, g2, { src: g1, step: [0, 1 / ph] });
    draw(gl, fine, out, { frame: frameTex, mid: mid_, gate: g2, texel: [1 / pw, 1 / ph] });
    return out;
  };
}
