// Guided edge refinement (stages/refine.py, He & Sun 2015 "Fast Guided Filter"): the guided
// filter's coefficients A, b are computed at working size (grey guide, box radius 4, eps 1e-3),
// box-filtered, and only applied at full size: alpha = A * grey(frame) + b, kept between the
// network's own lowest and highest value within `reach` working pixels (a cross), which stops the
// filter copying the floor's texture into a soft band as a glow (stages/refine.py's
// network_bounds). The full-size work is one multiply-add and a clamp per pixel, done inside the
// compose pass (gl-background.js alphaFrom).
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

// A = cov(I, p) / (var(I) + eps), b = mean(p) - A mean(I); then box-filtered along one axis.
// The second axis also writes the network's bounds: B = lowest, A = highest matte within REACH
// texels along the axes (a cross, as cv2.MORPH_CROSS in stages/refine.py)
const COEFFS = `
uniform sampler2D src;
uniform sampler2D matte;   // R: the working-size matte (second axis only)
uniform vec2 step;
uniform vec2 texel;        // one working texel (second axis only)
uniform float reach;       // in texels; under 1 (the page's grid is coarser than the server's):
                           // the linearly interpolated matte's extremes within that distance;
                           // negative: no bounds (the server declared reach None)
uniform float eps;
#if !FROM_MOMENTS
vec2 bounds(vec2 q) {
  float m = texture(matte, q).r;
  vec2 lohi = vec2(m);
  for (int k = 1; k <= REACH; k++) {
    vec4 v = vec4(texture(matte, q + vec2(float(k) * texel.x, 0.0)).r,
                  texture(matte, q - vec2(float(k) * texel.x, 0.0)).r,
                  texture(matte, q + vec2(0.0, float(k) * texel.y)).r,
                  texture(matte, q - vec2(0.0, float(k) * texel.y)).r);
    lohi = vec2(min(lohi.x, min(min(v.x, v.y), min(v.z, v.w))), max(lohi.y, max(max(v.x, v.y), max(v.z, v.w))));
  }
  return reach < 0.0 ? vec2(0.0, 1.0) : mix(vec2(m), lohi, clamp(reach, 0.0, 1.0));  // < 0: unbounded
}
#endif
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
#if FROM_MOMENTS
  outColor = vec4(acc / float(2 * R + 1), 0.0, 1.0);
#else
  outColor = vec4(acc / float(2 * R + 1), bounds(uv));
#endif
}`;

export function makeRefine(gl, targets) {
  // returns the (A, b) texture at working size; the compose pass applies it at full size
  return (matte, { radius = 4, eps = 1e-3, reach = 1 } = {}) => {  // reach < 0: unbounded
    const { width: w, height: h } = matte;
    const mx = targets.get("moments-x", w, h, "rgba32f", "nearest");
    const my = targets.get("moments", w, h, "rgba32f", "nearest");
    const cx = targets.get("coeffs-x", w, h, "rgba32f", "nearest");
    const ab = targets.get("coeffs", w, h, "rgba16f", "linear");
    const R = Math.max(1, Math.round(radius));
    const REACH = Math.max(0, Math.ceil(reach));
    draw(gl, variant(gl, MOMENTS, { R, FROM_MATTE: true }), mx, { src: matte, step: [1 / w, 0] });
    draw(gl, variant(gl, MOMENTS, { R, FROM_MATTE: false }), my, { src: mx, step: [0, 1 / h] });
    draw(gl, variant(gl, COEFFS, { R, FROM_MOMENTS: true }), cx, { src: my, step: [1 / w, 0], eps });
    draw(gl, variant(gl, COEFFS, { R, REACH, FROM_MOMENTS: false }), ab,
      { src: cx, matte, step: [0, 1 / h], texel: [1 / w, 1 / h], reach, eps });
    return ab;
  };
}
