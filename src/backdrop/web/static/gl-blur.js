// Background blur of the user's own room with the person taken out first (compose/backgrounds/
// blur.py): at a size where the blur is ~3 pixels, pixels that are even partly person (alpha >=
// 0.05 anywhere in a 3x3 neighbourhood: the Python erosion) get weight 0, the premultiplied
// (rgb * keep, keep) image is Gaussian-blurred along x then y, and mipmapped so that the compose
// pass can fill the middle of a large person from a coarser level.
"use strict";
import { program, draw } from "./gl.js";
import { ALPHA_GLSL } from "./gl-background.js";

const KEEP = ALPHA_GLSL + `
uniform vec2 texel;          // one small-size pixel
void main() {
  float a = 0.0;
  for (int j = -1; j <= 1; j++)
    for (int i = -1; i <= 1; i++) a = max(a, alphaAt(uv + vec2(float(i), float(j)) * texel));
  float keep = a < 0.05 ? 1.0 : 0.0;
  outColor = vec4(texture(frame, uv).rgb * keep, keep);
}`;

export const GAUSS = `
uniform sampler2D src;
uniform vec2 step;           // one pixel along the axis
uniform float sigma;         // in pixels
void main() {
  vec4 acc = vec4(0.0); float wsum = 0.0;
  int r = int(ceil(3.0 * sigma));
  for (int k = -24; k <= 24; k++) {
    if (k < -r || k > r) continue;
    float w = exp(-0.5 * float(k * k) / (sigma * sigma));
    acc += w * texture(src, uv + float(k) * step); wsum += w;
  }
  outColor = acc / wsum;
}`;

export function makeBlur(gl, targets) {
  const keep = program(gl, KEEP);
  const gauss = program(gl, GAUSS);
  // strength: the Gaussian's sigma at 640 px, as --background blur:S
  return (frameTex, coeffs, refine, w, h, strength) => {
    const sigmaFull = strength * Math.max(w, h) / 640;
    const factor = Math.max(1, Math.floor(sigmaFull / 3));
    const sw = Math.max(1, Math.floor(w / factor)); const sh = Math.max(1, Math.floor(h / factor));
    const sigma = Math.max(0.5, Math.min(8, sigmaFull / factor));
    const a = targets.get("blur-keep", sw, sh, "rgba16f");
    const b = targets.get("blur-x", sw, sh, "rgba16f");
    const out = targets.get("blurred", sw, sh, "rgba16f");
    draw(gl, keep, a, { frame: frameTex, coeffs, refine, texel: [1 / sw, 1 / sh] });
    draw(gl, gauss, b, { src: a, step: [1 / sw, 0], sigma });
    draw(gl, gauss, out, { src: b, step: [0, 1 / sh], sigma });
    gl.bindTexture(gl.TEXTURE_2D, out.tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
    gl.generateMipmap(gl.TEXTURE_2D);
    out.maxLod = Math.floor(Math.log2(Math.max(sw, sh)));
    return out;
  };
}
