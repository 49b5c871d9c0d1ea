// Guided edge refinement (stages/refine.py, He & Sun 2015 "Fast Guided Filter"): the guided
// filter's coefficients A, b are computed at working size (grey guide, box radius 4, eps 1e-3),
// box-filtered, and only applied at full size: alpha = A * grey(frame) + b. The full-size work is
// one multiply-add per pixel, done inside the compose pass.
"use strict";
import { variant, draw } from "./gl.js";

// moments (I, p, I*p, I*I), box-filtered along one axis
const MOMENTS = `
uniform sampler2D src;     // R: matte, G: grey 0..255 (the temporal pass's output)
uniform vec2 step;         // one working texel along the axis
// R: the box radius; FROM_MATTE: first axis (build the moments) or second (filter them)
void main() {
  vec4 acc = vec4(0.0);
  for (int k = -R; k <= R; k++) {
    vec2 q = uv + float(k) * step;
#if FROM_MATTE
    vec2 s = texture(src, q).rg;
    float I = s.y / 255.0;
    acc += vec4(I, s.x, I * s.x, I * I);
#else
    acc += texture(src, q);
#endif
  }
  outColor = acc / float(2 * R + 1);
}`;

// A = cov(I, p) / (var(I) + eps), b = mean(p) - A mean(I); then box-filtered along one axis
const COEFFS = `
uniform sampler2D src;
uniform vec2 step;
uniform float eps;
vec2 coeffs(vec2 q) {
  vec4 m = texture(src, q);
  float A = (m.z - m.x * m.y) / (m.w - m.x * m.x + eps);
  return vec2(A, m.y - A * m.x);
}
void main() {
  vec2 acc = vec2(0.0);
  for (int k = -R; k <= R; k++) {
    vec2 q = uv + float(k) * step;
#if FROM_MOMENTS
    acc += coeffs(q);
#else
    acc += texture(src, q).rg;
#endif
  }
  outColor = vec4(acc / float(2 * R + 1), 0.0, 1.0);
}`;

export function makeRefine(gl, targets) {
  // returns the (A, b) texture at working size; the compose pass applies it at full size
  return (matte, { radius = 4, eps = 1e-3 } = {}) => {
    const { width: w, height: h } = matte;
    const mx = targets.get("moments-x", w, h, "rgba32f", "nearest");
    const my = targets.get("moments", w, h, "rgba32f", "nearest");
    const cx = targets.get("coeffs-x", w, h, "rgba32f", "nearest");
    const ab = targets.get("coeffs", w, h, "rgba16f", "linear");
    const R = Math.max(1, Math.round(radius));
    draw(gl, variant(gl, MOMENTS, { R, FROM_MATTE: true }), mx, { src: matte, step: [1 / w, 0] });
    draw(gl, variant(gl, MOMENTS, { R, FROM_MATTE: false }), my, { src: mx, step: [0, 1 / h] });
    draw(gl, variant(gl, COEFFS, { R, FROM_MOMENTS: true }), cx, { src: my, step: [1 / w, 0], eps });
    draw(gl, variant(gl, COEFFS, { R, FROM_MOMENTS: false }), ab, { src: cx, step: [0, 1 / h], eps });
    return ab;
  };
}
