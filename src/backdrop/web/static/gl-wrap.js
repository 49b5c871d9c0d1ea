// Light wrap (compose/effects.py light_wrap): at 320 px on the long side, the new background
// outside the person, (B * (1 - a), 1 - a), blurred with sigma 1% of that size; the compose
// pass screens glow = rgb / outside onto the person's rim with weight clamp(2 * outside * a).
"use strict";
import { variant, draw } from "./gl.js";
import { ALPHA_GLSL, BACKGROUND_GLSL, KINDS, backgroundInputs } from "./gl-background.js";
import { gaussian } from "./gl-blur.js";

const OUTSIDE = ALPHA_GLSL + BACKGROUND_GLSL + `
void main() {
  float out_ = 1.0 - alphaAt(uv);
  outColor = vec4(backgroundAt(uv) * out_, out_);
}`;

export function makeWrap(gl, targets) {
  return (frameTex, coeffs, refine, bg, w, h) => {
    const s = Math.min(1, 320 / Math.max(w, h));
    const sw = Math.max(1, Math.round(w * s)); const sh = Math.max(1, Math.round(h * s));
    const sigma = Math.max(1, 0.01 * Math.max(sw, sh));
    const a = targets.get("wrap-src", sw, sh, "rgba16f");
    const b = targets.get("wrap-x", sw, sh, "rgba16f");
    const out = targets.get("wrap", sw, sh, "rgba16f");
    draw(gl, variant(gl, OUTSIDE, { REFINE: refine, KIND: KINDS[bg.kind] ?? 0 }), a, { frame: frameTex, coeffs, ...backgroundInputs(bg) });
    gaussian(gl, a, b, out, sigma);
    return out;
  };
}
