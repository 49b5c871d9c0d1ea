// Motion-guided temporal fusion at working size (stages/temporal.py, in a shader): where the
// picture did not change the new matte is blended with the fused past, where it moved the new
// matte is trusted as is, and where the network is now sure nobody is there the past lets go.
// Output: R = fused matte, G = this frame's grey level (the next frame's "previous grey").
"use strict";
import { program, draw } from "./gl.js";

const FRAG = `
uniform sampler2D mask;      // network output, any size (sampled bilinearly, as the Python canvas)
uniform sampler2D frame;     // camera frame, full size
uniform sampler2D past;      // last output of this pass (R fused, G grey)
uniform vec2 texel;          // 1 / working size
uniform float strength;      // weight of the past where still (0.93 measured, docs/quality.md)
uniform float reach;         // motion counts this many working pixels around where it is seen
uniform bool first;
float grey(vec2 p) { return dot(texture(frame, p).rgb, vec3(0.299, 0.587, 0.114)) * 255.0; }
void main() {
  float m = texture(mask, uv).r;
  float g = grey(uv);
  if (first) { outColor = vec4(m, g, 0.0, 1.0); return; }
  vec4 prev = texture(past, uv);
  // |grey - previous grey|, smoothed (5x5 Gaussian in Python) then dilated over the reach
  float diff = 0.0;
  for (int j = -2; j <= 2; j++) {
    for (int i = -2; i <= 2; i++) {
      vec2 o = vec2(float(i), float(j)) * texel * reach * 0.5;
      vec2 q = uv + o;
      float d = abs(grey(q) - texture(past, q).g);
      diff = max(diff, d * 0.7);  // 0.7: the blur's peak response to a one-pixel change
    }
  }
  float moving = clamp((diff - 6.0) / 18.0, 0.0, 1.0);
  float wPast = strength * (1.0 - moving);
  // let go: past had a person, the network is now sure there is none (LET_GO = 0.05..0.15)
  float drop = clamp((prev.r - m - 0.05) / 0.10, 0.0, 1.0) * (m < 0.02 ? 1.0 : 0.0);
  wPast *= 1.0 - drop;
  outColor = vec4(m + wPast * (prev.r - m), g, wPast, 1.0);
}`;

export function makeTemporal(gl) {
  const prog = program(gl, FRAG);
  return (maskTex, frameTex, past, out, { strength, first }) => {
    const reach = Math.max(1, Math.round(0.008 * Math.max(out.width, out.height)));
    draw(gl, prog, out, { mask: maskTex, frame: frameTex, past: past || maskTex,
      texel: [1 / out.width, 1 / out.height], strength, reach, first: first || !past || strength <= 0 });
  };
}
