// The one full-size pass: the refined alpha (A * grey + b, gl-refine.js), the foreground with
// the old room's colour taken out of the edge (decontamination: F = (I - (1 - a) B_room) / a,
// B_room from the person-free blur of gl-blur.js, as compose/foreground.py estimates it),
// the touch-up change (gl-touchup.js), the blend I = a F + (1 - a) B, and light wrap screened on the rim. Presenter mode places the
// camera frame (scaled) over the slide; transparent writes the alpha into the canvas.
"use strict";
import { program, draw } from "./gl.js";
import { ALPHA_GLSL, BACKGROUND_GLSL, backgroundInputs } from "./gl-background.js";

const FRAG = ALPHA_GLSL + BACKGROUND_GLSL + `
uniform sampler2D touch;     // touch-up change W (gl-touchup.js), added as strength * alpha * W
uniform float touchUp;
uniform sampler2D room;      // the person-free blur of the camera's own room (premultiplied)
uniform sampler2D wrap;      // light wrap source (gl-wrap.js)
uniform bool effect;
uniform bool decontaminate;
uniform float wrapStrength;
uniform vec3 place;          // presenter: scale, tx, ty in output pixels (y down)
uniform vec2 outSize;
uniform vec2 frameSize;
void main() {
  vec2 p = uv;
  bool presenter = kind == 4;
  if (presenter) {
    vec2 px = vec2(uv.x, 1.0 - uv.y) * outSize;
    vec2 f = (px - place.yz) / place.x;
    p = vec2(f.x / frameSize.x, 1.0 - f.y / frameSize.y);
  }
  bool inside = p.x >= 0.0 && p.y >= 0.0 && p.x <= 1.0 && p.y <= 1.0;
  if (!effect) { outColor = vec4(texture(frame, presenter ? uv : p).rgb, 1.0); return; }
  float a = inside ? alphaAt(p) : 0.0;
  vec3 I = texture(frame, p).rgb;
  vec3 F = I;
  if (decontaminate && a > 0.0 && a < 0.98) {
    vec4 r = texture(room, p);
    if (r.a > 1e-3) {
      vec3 Br = r.rgb / r.a;
      vec3 est = clamp((I - (1.0 - a) * Br) / max(a, 0.05), 0.0, 1.0);
      F = mix(est, I, smoothstep(0.6, 0.98, a));  // the certain interior keeps its own pixels
    }
  }
  if (touchUp > 0.0) F = clamp(F + touchUp * a * texture(touch, p).rgb, 0.0, 1.0);
  if (kind == 3) { outColor = vec4(F, a); return; }
  vec3 c = mix(backgroundAt(uv), F, a);
  if (wrapStrength > 0.0 && !presenter) {
    vec4 w = texture(wrap, uv);
    vec3 glow = w.rgb / max(w.a, 1e-3);
    float wt = clamp(w.a * a * 2.0, 0.0, 1.0) * wrapStrength;
    c = mix(c, 1.0 - (1.0 - c) * (1.0 - glow), wt);
  }
  outColor = vec4(c, 1.0);
}`;

export function makeCompose(gl) {
  const prog = program(gl, FRAG);
  return (inputs) => {
    const { frameTex, touch, touchUp, coeffs, refine, bg, room, wrap, wrapStrength, effect, decontaminate,
      place, outW, outH, frameW, frameH } = inputs;
    draw(gl, prog, null, {
      frame: frameTex, coeffs, refine, touch: touch || coeffs, touchUp: touch ? touchUp : 0, room: room || coeffs, wrap: wrap || coeffs,
      ...backgroundInputs(bg), effect, decontaminate: decontaminate && Boolean(room),
      wrapStrength: wrap ? wrapStrength : 0, place: place || [1, 0, 0],
      outSize: [outW, outH], frameSize: [frameW, frameH],
    });
  };
}
