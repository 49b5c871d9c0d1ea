// Motion-guided temporal fusion at working size (stages/temporal.py, in a shader): where the
// picture did not change the new matte is blended with the fused past, where it moved the new
// matte is trusted as is, and where the network is now sure nobody is there the past lets go.
// Output: R = fused matte, G = this frame's grey level (the next frame's "previous grey").
"use strict";
import { program, variant, draw } from "./gl.js";

// the frame's grey level at working size (an area average of up to 4x4 bilinear taps)
const GREY = `
uniform sampler2D frame;
uniform vec2 srcTexel;
uniform vec2 footprint;      // NX x NY bilinear taps (defines) cover it: 4 texels per tap
void main() {
  vec3 acc = vec3(0.0);
  for (int j = 0; j < NY; j++)
    for (int i = 0; i < NX; i++) {
      vec2 o = (vec2(float(i), float(j)) + 0.5) / vec2(NX, NY) - 0.5;
      acc += texture(frame, uv + o * footprint * srcTexel).rgb;
    }
  outColor = vec4(dot(acc / float(NX * NY), vec3(0.299, 0.587, 0.114)) * 255.0, 0.0, 0.0, 1.0);
}`;

const FRAG = `
uniform sampler2D mask;      // network output on the ROI crop (sampled bilinearly, as the Python canvas)
uniform vec4 crop;           // that crop in frame uv, y down (roi.js); outside it: no person
uniform sampler2D grey;      // this frame's grey level at working size (R, 0..255)
uniform sampler2D past;      // last output of this pass (R fused, G grey)
uniform vec2 texel;          // 1 / working size
uniform float strength;      // weight of the past where still (the declared default, docs/quality.md)
uniform float reach;         // motion counts this many working pixels around where it is seen
uniform vec2 motion;         // grey-level change treated as noise .. as real motion (declared constants)
uniform vec2 letGo;          // matte disagreement from which the past is dropped .. fully (LET_GO)
uniform float sureBackground;  // network matte below this: nobody there (SURE_BACKGROUND)
uniform bool first;
void main() {
  vec2 c = (vec2(uv.x, 1.0 - uv.y) - crop.xy) / crop.zw;
  float m = (c.x >= 0.0 && c.y >= 0.0 && c.x <= 1.0 && c.y <= 1.0) ? texture(mask, vec2(c.x, 1.0 - c.y)).r : 0.0;
  float g = texture(grey, uv).r;
  if (first) { outColor = vec4(m, g, 0.0, 1.0); return; }
  vec4 prev = texture(past, uv);
  // |grey - previous grey|, smoothed (5x5 Gaussian in Python) then dilated over the reach:
  // the maximum over a 3x3 grid spanning the reach, each tap already smoothed by bilinear
  // sampling between texels (9 taps instead of 25: SwiftShader's cost is per texture fetch)
  float diff = 0.0;
  for (int j = -1; j <= 1; j++) {
    for (int i = -1; i <= 1; i++) {
      vec2 q = uv + (vec2(float(i), float(j)) * reach + 0.5) * texel;
      float d = abs(texture(grey, q).r - texture(past, q).g);
      diff = max(diff, d * 0.7);  // 0.7: the blur's peak response to a one-pixel change
    }
  }
  float moving = clamp((diff - motion.x) / max(1e-3, motion.y - motion.x), 0.0, 1.0);
  float wPast = strength * (1.0 - moving);
  // let go: past had a person, the network is now sure there is none
  float drop = clamp((prev.r - m - letGo.x) / max(1e-3, letGo.y - letGo.x), 0.0, 1.0) * (m < sureBackground ? 1.0 : 0.0);
  wPast *= 1.0 - drop;
  outColor = vec4(m + wPast * (prev.r - m), g, wPast, 1.0);
}`;

export function makeTemporal(gl, targets) {
  const prog = program(gl, FRAG);
  // constants: stages/temporal.py's, from the server's declaration (engine/declaration.py)
  return (maskTex, frameTex, w, h, past, out, { strength, first, crop = [0, 0, 1, 1], constants: c = {} }) => {
    const grey = targets.get("grey", out.width, out.height, "rgba16f");
    const taps = (n) => Math.max(1, Math.min(4, Math.ceil(n / 2)));
    const greyProg = variant(gl, GREY, { NX: taps(w / out.width), NY: taps(h / out.height) });
    draw(gl, greyProg, grey, { frame: frameTex, srcTexel: [1 / w, 1 / h], footprint: [w / out.width, h / out.height] });
    const reach = Math.max(1, Math.round((c.motion_reach ?? 0) * Math.max(out.width, out.height)));
    draw(gl, prog, out, { mask: maskTex, crop, grey, past: past || maskTex,
      texel: [1 / out.width, 1 / out.height], strength, reach, first: first || !past || strength <= 0,
      motion: [c.motion_low ?? 0, c.motion_high ?? 1], letGo: [c.let_go_low ?? 1, c.let_go_high ?? 2],
      sureBackground: c.sure_background ?? 0 });
  };
}
