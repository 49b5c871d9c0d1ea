// Background blur of the user's own room with the person taken out first (compose/backgrounds/
// blur.py): at a size where the blur is ~3 pixels, pixels that are even partly person (alpha >=
// 0.05 anywhere in a 3x3 neighbourhood: the Python erosion) get weight 0, the premultiplied
// (rgb * keep, keep) image is Gaussian-blurred along x then y, and mipmapped so that the compose
// pass can fill the middle of a large person from a coarser level.
"use strict";
import { variant, draw } from "./gl.js";
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

// separable Gaussian, two taps per fetch: linear filtering between texels k and k+1 at the
// offset k + w(k+1) / (w(k) + w(k+1)) returns their weighted sum (half the fetches)
export const GAUSS = `
uniform sampler2D src;
uniform vec2 step;           // one pixel along the axis
uniform float sigma;         // in pixels; R = ceil(3 sigma), a define
float g(float k) { return exp(-0.5 * k * k / (sigma * sigma)); }
void main() {
  vec4 acc = texture(src, uv); float wsum = 1.0;
  for (int k = 1; k <= R; k += 2) {
    float w0 = g(float(k)); float w1 = g(float(k + 1)); float w = w0 + w1;
    float o = float(k) + w1 / w;
    acc += w * (texture(src, uv + o * step) + texture(src, uv - o * step)); wsum += 2.0 * w;
  }
  outColor = acc / wsum;
}`;

// the separable Gaussian of `src` into `out` (x into `tmp`, then y), one compiled variant per radius
export function gaussian(gl, src, tmp, out, sigma) {
  const prog = variant(gl, GAUSS, { R: Math.max(1, Math.ceil(3 * sigma)) });
  draw(gl, prog, tmp, { src, step: [1 / src.width, 0], sigma });
  draw(gl, prog, out, { src: tmp, step: [0, 1 / tmp.height], sigma });
}

export function makeBlur(gl, targets) {
  // strength: the Gaussian's sigma at 640 px, as --background blur:S; minFactor: downscale at
  // least this much (the decontamination's room estimate needs only a coarse, person-free room:
  // measured, made at full size it cost a colour background 2.8x the fps of blur)
  return (frameTex, coeffs, refine, w, h, strength, minFactor = 1) => {
    const sigmaFull = strength * Math.max(w, h) / 640;
    const factor = Math.max(minFactor, Math.floor(sigmaFull / 3));
    const sw = Math.max(1, Math.floor(w / factor)); const sh = Math.max(1, Math.floor(h / factor));
    const sigma = Math.max(1, Math.min(8, sigmaFull / factor));
    const a = targets.get("blur-keep", sw, sh, "rgba16f");
    const b = targets.get("blur-x", sw, sh, "rgba16f");
    const out = targets.get("blurred", sw, sh, "rgba16f");
    draw(gl, variant(gl, KEEP, { REFINE: refine }), a, { frame: frameTex, coeffs, texel: [1 / sw, 1 / sh] });
    gaussian(gl, a, b, out, sigma);
    gl.bindTexture(gl.TEXTURE_2D, out.tex);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
    gl.generateMipmap(gl.TEXTURE_2D);
    out.maxLod = Math.floor(Math.log2(Math.max(sw, sh)));
    out.coarseLod = Math.max(0, out.maxLod - 3);  // ~8x8 texels: reaches across a large person
    return out;
  };
}
