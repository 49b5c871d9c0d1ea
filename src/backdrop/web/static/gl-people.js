// The people stage's matte on the GPU (stages/people.py): each tracked person's 256x256 mask warped
// from their crop into the working-size frame (the union: MAX blending), then combined with the
// selfie network's matte as stages/people.py's combine() does: near a person (within `reach`
// working pixels of their mask) selfie only confirms where BlazePose gives some chance (`gate`),
// farther away it counts as it is. Output: R = the matte, working size, over the whole frame.
"use strict";
import { program, variant, draw } from "./gl.js";
import { invert } from "./people.js";

const PASTE = `
uniform sampler2D mask;      // one person's crop mask (row 0 = the crop's top)
uniform vec3 rowU;           // working pixel (x, y) -> crop pixel u = rowU . (x, y, 1)
uniform vec3 rowV;
uniform vec2 workSize;
uniform float crop;
void main() {
  vec2 p = vec2(uv.x, 1.0 - uv.y) * workSize - 0.5;   // working pixel index, y down
  vec2 c = vec2(dot(rowU, vec3(p, 1.0)), dot(rowV, vec3(p, 1.0)));
  float inside = (c.x >= -0.5 && c.y >= -0.5 && c.x <= crop - 0.5 && c.y <= crop - 0.5) ? 1.0 : 0.0;
  outColor = vec4(texture(mask, vec2((c.x + 0.5) / crop, 1.0 - (c.y + 0.5) / crop)).r * inside, 0.0, 0.0, 1.0);
}`;

// max over a (2R+1) line of taps along one axis, of (people > 0.5)
const GROW = `
uniform sampler2D src;
uniform vec2 dir;            // one working pixel along the axis
void main() {
  float m = 0.0;
  for (int i = -R; i <= R; i++) {
    float v = texture(src, uv + float(i) * dir).r;
#if FIRST
    v = v > 0.5 ? 1.0 : 0.0;
#endif
    m = max(m, v);
  }
  outColor = vec4(m, 0.0, 0.0, 1.0);
}`;

const COMBINE = `
uniform sampler2D people;
uniform sampler2D near;
uniform sampler2D selfie;    // the selfie network's output on its crop
uniform vec4 crop;           // that crop in frame uv, y down
uniform float gate;
void main() {
  vec2 c = (vec2(uv.x, 1.0 - uv.y) - crop.xy) / crop.zw;
  float s = (c.x >= 0.0 && c.y >= 0.0 && c.x <= 1.0 && c.y <= 1.0) ? texture(selfie, vec2(c.x, 1.0 - c.y)).r : 0.0;
  float p = texture(people, uv).r;
  float confirmed = (p > gate && s > 0.5) ? max(p, s) : p;
  outColor = vec4(texture(near, uv).r > 0.5 ? confirmed : max(p, s), 0.0, 0.0, 1.0);
}`;

export function makePeople(gl, targets) {
  const paste = program(gl, PASTE);
  const combine = program(gl, COMBINE);
  let maskTex = null;
  return (tracks, selfieTex, selfieCrop, w, h, ww, wh, c) => {
    const people = targets.get("people", ww, wh, "rgba16f");
    gl.bindFramebuffer(gl.FRAMEBUFFER, people.fbo);
    gl.viewport(0, 0, ww, wh);
    gl.clearColor(0, 0, 0, 1);
    gl.clear(gl.COLOR_BUFFER_BIT);
    gl.enable(gl.BLEND);
    gl.blendEquation(gl.MAX);
    for (const t of tracks) {
      const m = t.result.roi.toFrame(c.crop);  // crop -> frame pixels; then frame -> working pixels
      const toWork = [m[0] * ww / w, m[1] * ww / w, m[2] * ww / w, m[3] * wh / h, m[4] * wh / h, m[5] * wh / h];
      const inv = invert(toWork);
      maskTex = uploadMask(gl, maskTex, t.result.mask, c.crop);
      draw(gl, paste, people, { mask: maskTex, rowU: inv.slice(0, 3), rowV: inv.slice(3, 6), workSize: [ww, wh], crop: c.crop });
    }
    gl.disable(gl.BLEND);
    gl.blendEquation(gl.FUNC_ADD);
    const side = Math.max(...tracks.map((t) => t.result.roi.side));
    const R = Math.max(1, Math.round(c.reach * side * ww / w));
    const gx = targets.get("people-near-x", ww, wh, "rgba16f");
    const near = targets.get("people-near", ww, wh, "rgba16f");
    draw(gl, variant(gl, GROW, { R: Math.min(R, 64), FIRST: true }), gx, { src: people, dir: [1 / ww, 0] });
    draw(gl, variant(gl, GROW, { R: Math.min(R, 64), FIRST: false }), near, { src: gx, dir: [0, 1 / wh] });
    const out = targets.get("people-matte", ww, wh, "rgba16f");
    draw(gl, combine, out, { people, near, selfie: selfieTex, crop: selfieCrop, gate: c.gate });
    return out;
  };
}

function uploadMask(gl, t, mask, size) {
  if (!t) {
    const tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, tex);
    for (const [k, v] of [[gl.TEXTURE_MIN_FILTER, gl.LINEAR], [gl.TEXTURE_MAG_FILTER, gl.LINEAR],
      [gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE], [gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE]]) gl.texParameteri(gl.TEXTURE_2D, k, v);
    t = { tex, width: size, height: size };
  }
  gl.bindTexture(gl.TEXTURE_2D, t.tex);
  gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
  gl.texImage2D(gl.TEXTURE_2D, 0, gl.R16F, size, size, 0, gl.RED, gl.FLOAT, mask);
  return t;
}
