// The one full-size pass: the refined alpha (A * grey + b, gl-refine.js), the foreground with
// the old room's colour taken out of the edge (decontamination: F = (I - (1 - a) B_room) / a,
// B_room from the person-free blur of gl-blur.js, as compose/foreground.py estimates it),
// the touch-up change (gl-touchup.js), the relight (gl-relight.js), the blend I = a F + (1 - a) B, and light wrap screened on
// the rim. Presenter mode places the camera frame (scaled) over the slide; transparent writes the
// alpha into the canvas. Each combination of features is its own compiled variant, so a frame
// pays only for the texture fetches it uses.
"use strict";
import { variant, draw } from "./gl.js";
import { ALPHA_GLSL, BACKGROUND_GLSL, KINDS, backgroundInputs } from "./gl-background.js";
import { RELIGHT_GLSL } from "./gl-relight.js";

const FRAG = ALPHA_GLSL + BACKGROUND_GLSL + RELIGHT_GLSL + `
uniform sampler2D touch;     // touch-up change W, added as strength * alpha * W
uniform float touchUp;
uniform sampler2D room;      // the person-free blur of the camera's own room (premultiplied)
uniform sampler2D wrap;      // light wrap source (gl-wrap.js)
uniform float wrapStrength;
uniform vec3 place;          // presenter: scale, tx, ty in output pixels (y down)
uniform vec2 outSize;
uniform vec2 frameSize;
void main() {
#if !EFFECT
  outColor = vec4(texture(frame, uv).rgb, 1.0);
#else
  vec2 p = uv;
  float inside = 1.0;
#if KIND == 4
  vec2 px = vec2(uv.x, 1.0 - uv.y) * outSize;
  vec2 f = (px - place.yz) / place.x;
  p = vec2(f.x / frameSize.x, 1.0 - f.y / frameSize.y);
  inside = (p.x >= 0.0 && p.y >= 0.0 && p.x <= 1.0 && p.y <= 1.0) ? 1.0 : 0.0;
#endif
  vec3 I = texture(frame, p).rgb;
  float a = alphaFrom(p, I) * inside;
  vec3 F = I;
  // the edge band and the person only: whole blocks of pixels outside them skip the work
  // (software WebGL branches per block of pixels, so most of the frame pays nothing here)
#if DECONTAMINATE
  if (a > 0.002 && a < 0.98) {
    vec4 r = texture(room, p);
    if (r.a > 1e-3) {
      vec3 est = clamp((I - (1.0 - a) * r.rgb / r.a) / max(a, 0.05), 0.0, 1.0);
      F = mix(est, I, smoothstep(0.6, 0.98, a));  // the certain interior keeps its own pixels
    }
  }
#endif
#if TOUCH
  if (a > 0.002) F = clamp(F + touchUp * a * texture(touch, p).rgb, 0.0, 1.0);
#endif
#if RELIGHT
  if (a > 0.002) F = relight(F, I, p);  // gl-relight.js: the lift and the look of stages/relight.py
#endif
#if KIND == 3
  outColor = vec4(F, a);
#elif KIND == 5
  outColor = vec4(vec3(a), 1.0);
#else
  vec3 c = a > 0.998 ? F : mix(backgroundAt(uv), F, a);
#if WRAP
  if (a > 0.002) {
    vec4 w = texture(wrap, uv);
    vec3 glow = w.rgb / max(w.a, 1e-3);
    float wt = clamp(w.a * a * 2.0, 0.0, 1.0) * wrapStrength;
    c = mix(c, 1.0 - (1.0 - c) * (1.0 - glow), wt);
  }
#endif
  outColor = vec4(c, 1.0);
#endif
#endif
}`;

export function makeCompose(gl) {
  return (inputs) => {
    const { frameTex, touch, touchUp, coeffs, refine, bg, room, wrap, wrapStrength, effect, decontaminate,
      place, outW, outH, frameW, frameH, relight } = inputs;
    const kind = KINDS[bg.kind] ?? 0;
    const prog = variant(gl, FRAG, {
      EFFECT: effect, KIND: kind, REFINE: refine, DECONTAMINATE: Boolean(decontaminate && room),
      TOUCH: Boolean(touch && touchUp > 0), WRAP: Boolean(wrap && wrapStrength > 0 && kind !== 4),
      RELIGHT: Boolean(relight),
    });
    draw(gl, prog, null, {
      frame: frameTex, coeffs, touch: touch || coeffs, touchUp: touchUp || 0, room: room || coeffs,
      wrap: wrap || coeffs, ...backgroundInputs(bg), wrapStrength: wrapStrength || 0,
      place: place || [1, 0, 0], outSize: [outW, outH], frameSize: [frameW, frameH],
      ...(relight ? { relightLift: relight.lift, relightLook: relight.look, denoise: relight.denoise,
        frameTexel: [1 / frameW, 1 / frameH] } : {}),
    });
  };
}
