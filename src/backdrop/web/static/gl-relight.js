// Relight (stages/relight.py) on the GPU, nothing read back. The statistics the Python stage takes
// at 96 px are taken here at 64x64 and averaged by mipmaps (the 1x1 level is the mean):
//   1. the matte's moments (a, a v, a v^2; v down): the person's rows, so the face region is the
//      top `upper_share` of their height, as relight_estimate.upper_weight;
//   2. of the camera frame: the face's linear luminance, a histogram of the person's log2
//      luminance (16 half-stop bins in four textures: the highlight quantile) and the clipped
//      Immerkaer noise at 4096 full-resolution pixels of the person's interior;
//   3. the lift (the low-light gain) into a 1x1 state, smoothed over frames;
//   4. of the lifted person and of the new background: log luminance and its square, chroma,
//      channel means (background weighted by 1 - a times its nearness to the person: a coarse
//      mipmap level of the matte), and the background's grey spread (a flat colour is no scene);
//   5. the look (exposure, warm, green, contrast, saturation, pivot) into a 2x1 state, smoothed,
//      taken at once on a new background.
// With every gain of the look 0 (as shipped: docs/quality.md "Relight") steps 4 and 5 are skipped.
// The compose pass applies both to the person (RELIGHT_GLSL). Every number is the declaration's
// (GET /config "pipeline", the stage's `constants`): none is copied from Python here.
"use strict";
import { variant, draw } from "./gl.js";
import { ALPHA_GLSL, BACKGROUND_GLSL, KINDS, backgroundInputs } from "./gl-background.js";

const SIDE = 64;
const TOP = 6;  // log2(SIDE): the 1x1 mipmap level

export const COLOUR_GLSL = `
vec3 toLinear(vec3 c) { return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(0.04045, c)); }
vec3 toSrgb(vec3 l) { l = clamp(l, 0.0, 1.0); return mix(12.92 * l, 1.055 * pow(l, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, l)); }
float lumOf(vec3 lin) { return dot(lin, vec3(0.2126, 0.7152, 0.0722)); }
vec3 liftCurve(vec3 lin, float g) {  // compose/lowlight.py: g x / (1 + (g^3 - 1) x^3)^(1/3); g = 1: none
  return g * lin / pow(1.0 + (g * g * g - 1.0) * lin * lin * lin, vec3(1.0 / 3.0));
}`;

// 1: (a, a v, a v^2, 1)
const MOMENTS = ALPHA_GLSL + `
void main() { float a = alphaAt(uv); float v = 1.0 - uv.y; outColor = vec4(a, a * v, a * v * v, 1.0); }`;

// 2 and 4: one statistic per variant (WHICH); `moments` is pass 1's texture (mipmapped)
const STATS = ALPHA_GLSL + BACKGROUND_GLSL + COLOUR_GLSL + `
uniform sampler2D moments;
uniform sampler2D lift;      // pass 3's state: (log2 gain, face level, noise, 1)
uniform float upperShare;
uniform vec2 bins;           // the histogram's range in stops (lo, hi)
uniform float nearLod;       // the mipmap level of the matte that is its blur (nearness)
uniform float farWeight;
uniform float noiseClip;
uniform vec2 frameSize;
float logLum(vec3 lin) { return log2(max(lumOf(lin), 1.0 / 1024.0)); }
float chroma(vec3 lin) { float y = max(lumOf(lin), 1.0 / 1024.0); vec3 d = abs(lin - y); return (d.r + d.g + d.b) / y; }
float greyAt(ivec2 p) { return dot(texelFetch(frame, p, 0).rgb, vec3(0.299, 0.587, 0.114)) * 255.0; }
void main() {
  float a = alphaAt(uv);
  vec4 m = texelFetch(moments, ivec2(0), ${TOP});
  float mv = m.y / max(m.x, 1e-6); float sd = sqrt(max(0.0, m.z / max(m.x, 1e-6) - mv * mv));
  float face = a * ((1.0 - uv.y) < mv - 1.7320508 * sd + upperShare * 3.4641016 * sd ? 1.0 : 0.0);
  vec3 lin = toLinear(texture(frame, uv).rgb);
#if WHICH == 0
  outColor = vec4(face * lumOf(lin), face, 0.0, 1.0);
#elif WHICH >= 1 && WHICH <= 4
  float k = floor(clamp((logLum(lin) - bins.x) / ((bins.y - bins.x) / 16.0), 0.0, 15.0)) - float(4 * (WHICH - 1));
  outColor = a * vec4(k == 0.0, k == 1.0, k == 2.0, k == 3.0);
#elif WHICH == 5
  ivec2 p = clamp(ivec2(uv * frameSize), ivec2(1), ivec2(frameSize) - 2);
  float c = 4.0 * greyAt(p) - 2.0 * (greyAt(p + ivec2(1, 0)) + greyAt(p - ivec2(1, 0)) + greyAt(p + ivec2(0, 1))
    + greyAt(p - ivec2(0, 1))) + greyAt(p + ivec2(1, 1)) + greyAt(p - ivec2(1, 1)) + greyAt(p + ivec2(1, -1))
    + greyAt(p + ivec2(-1, 1));
  vec2 px = 2.0 / frameSize;
  float inside = min(min(a, alphaAt(uv + vec2(px.x, 0.0))), min(alphaAt(uv - vec2(px.x, 0.0)),
    min(alphaAt(uv + vec2(0.0, px.y)), alphaAt(uv - vec2(0.0, px.y))))) > 0.9 ? 1.0 : 0.0;
  outColor = vec4(inside * min(abs(c), noiseClip), inside, 0.0, 1.0);
#elif WHICH == 6 || WHICH == 7
  float g = exp2(texelFetch(lift, ivec2(0), 0).x);
  if (g > 1.001) lin = liftCurve(lin, g);
#if WHICH == 6
  float l = logLum(lin);
  outColor = vec4(a * l, a * l * l, a * chroma(lin), a);
#else
  outColor = vec4(a * lin, 0.0);
#endif
#else
  float near = clamp(textureLod(moments, uv, nearLod).x / max(2.0 * m.x, 1e-6), 0.0, 1.0);
  float w = (1.0 - a) * (farWeight + (1.0 - farWeight) * near);
  vec3 b = backgroundAt(uv);
  vec3 bl = toLinear(b);
#if WHICH == 8
  float l = logLum(bl);
  outColor = vec4(w * l, w * l * l, w * chroma(bl), w);
#elif WHICH == 9
  outColor = vec4(w * bl, 0.0);
#else
  float gr = dot(b, vec3(0.299, 0.587, 0.114));
  outColor = vec4(gr, gr * gr, 0.0, 1.0);
#endif
#endif
}`;

const MEAN = `vec4 meanOf(sampler2D t) { return texelFetch(t, ivec2(0), ${TOP}); }
float shrink(float d, float dead) { return sign(d) * max(0.0, abs(d) - dead); }
float follow(float old, float target, float k) { return old + k * (target - old); }`;

// 3: the lift (relight_estimate.lift_gain), smoothed: (log2 gain, face level, noise, 1)
const LIFT = MEAN + `
uniform sampler2D moments; uniform sampler2D face; uniform sampler2D noise;
uniform sampler2D h0; uniform sampler2D h1; uniform sampler2D h2; uniform sampler2D h3;
uniform sampler2D past;
uniform bool first;
uniform float strength; uniform float smoothing;
uniform vec2 bins; uniform float quantile;
uniform vec4 lift;           // below, gain, face, max
uniform vec3 noiseRamp;      // noise, noisy, clean
uniform float noiseUnit;
void main() {
  vec4 prev = texelFetch(past, ivec2(0), 0);
  float a = meanOf(moments).x;
  if (a < 1e-4) { outColor = first ? vec4(0.0, 0.0, 0.0, 1.0) : prev; return; }  // nobody: keep
  float hist[16];
  vec4 q0 = meanOf(h0) / a, q1 = meanOf(h1) / a, q2 = meanOf(h2) / a, q3 = meanOf(h3) / a;
  for (int i = 0; i < 4; i++) { hist[i] = q0[i]; hist[4 + i] = q1[i]; hist[8 + i] = q2[i]; hist[12 + i] = q3[i]; }
  float width = (bins.y - bins.x) / 16.0; float below = 0.0; float hi = bins.y;
  for (int i = 0; i < 16; i++) {
    if (below + hist[i] >= quantile) { hi = bins.x + (float(i) + clamp((quantile - below) / max(hist[i], 1e-9), 0.0, 1.0)) * width; break; }
    below += hist[i];
  }
  vec4 f = meanOf(face); float level = f.y > 1e-6 ? f.x / f.y : 0.0;
  vec4 n = meanOf(noise); float sigma = n.y * 4096.0 >= 16.0 ? n.x / n.y / noiseUnit : 0.0;
  float ramp = clamp((sigma - noiseRamp.x) / max(noiseRamp.y - noiseRamp.x, 1e-6), 0.0, 1.0);
  float stops = lift.y * max(0.0, lift.x - hi) * (noiseRamp.z + (1.0 - noiseRamp.z) * ramp);
  if (level > 0.0) stops = min(stops, log2(max(lift.z / level, 1.0)));
  float target = clamp(stops, 0.0, log2(lift.w)) * strength;
  outColor = vec4(first ? target : follow(prev.x, target, smoothing), level, sigma, 1.0);
}`;

// 5: the look (relight_estimate.estimate_look), smoothed: texel 0 (exposure, warm, green,
// contrast), texel 1 (saturation, log2 pivot, 0, 1)
const LOOK = MEAN + `
uniform sampler2D p1; uniform sampler2D p2; uniform sampler2D b1; uniform sampler2D b2; uniform sampler2D grey;
uniform sampler2D past;
uniform bool snap;
uniform float strength; uniform float smoothing;
uniform vec4 offsets; uniform float offsetChroma;   // lum, warm, green, spread; chroma
uniform vec4 gains; uniform float gainChroma;
uniform vec4 deads; uniform float deadChroma;
uniform vec2 flat_;
float logRatio(float a, float b) { return log2(max(a, 1e-3) / max(b, 1e-3)); }
void stats(vec4 s1, vec4 s2, out float lum, out float spread, out float chroma, out float warm, out float green) {
  float w = max(s1.w, 1e-9);
  lum = s1.x / w; spread = sqrt(max(0.0, s1.y / w - lum * lum)); chroma = s1.z / w;
  vec3 c = max(s2.rgb / w, vec3(1.0 / 1024.0));
  warm = log2(c.r / c.b); green = log2(c.g) - 0.5 * (log2(c.r) + log2(c.b));
}
void main() {
  vec4 prev0 = texelFetch(past, ivec2(0, 0), 0); vec4 prev1 = texelFetch(past, ivec2(1, 0), 0);
  vec4 s1 = meanOf(p1); vec4 t1 = meanOf(b1);
  bool texel1 = gl_FragCoord.x > 1.0;
  if (s1.w < 1e-4) { outColor = snap ? (texel1 ? vec4(0.0, -2.0, 0.0, 1.0) : vec4(0.0)) : (texel1 ? prev1 : prev0); return; }
  float pl, ps, pc, pw, pg, bl, bs, bc, bw, bg;
  stats(s1, meanOf(p2), pl, ps, pc, pw, pg);
  stats(t1, meanOf(b2), bl, bs, bc, bw, bg);
  vec4 gr = meanOf(grey);
  float sd = 255.0 * sqrt(max(0.0, gr.y - gr.x * gr.x));
  float scene = clamp((sd - flat_.x) / (flat_.y - flat_.x), 0.0, 1.0) * (t1.w > 1e-6 ? 1.0 : 0.0);
  vec4 look = -gains * vec4(shrink(pl - bl - offsets.x, deads.x), shrink(pw - bw - offsets.y, deads.y),
    shrink(pg - bg - offsets.z, deads.z), shrink(logRatio(ps, bs) - offsets.w, deads.w)) * scene * strength;
  float sat = -gainChroma * shrink(logRatio(pc, bc) - offsetChroma, deadChroma) * scene * strength;
  float pivot = pl + look.x;
  if (texel1) outColor = snap ? vec4(sat, pivot, 0.0, 1.0) : vec4(follow(prev1.x, sat, smoothing), follow(prev1.y, pivot, smoothing), 0.0, 1.0);
  else outColor = snap ? look : prev0 + smoothing * (look - prev0);
}`;

const NO_LOOK = `void main() { outColor = vec4(0.0); }`;

// applied in the compose pass to the person's colour F (frame colour I at p), after touch-up
export const RELIGHT_GLSL = COLOUR_GLSL + `
uniform sampler2D relightLift;  // (log2 gain, face level, noise, 1)
uniform sampler2D relightLook;  // 2x1: (exposure, warm, green, contrast), (saturation, log2 pivot, -, -)
uniform vec3 denoise;           // from (levels), sigma per level, space sigma
uniform vec2 frameTexel;
vec3 relight(vec3 F, vec3 I, vec2 p) {
  vec4 l = texelFetch(relightLift, ivec2(0), 0);
  float g = exp2(l.x);
  vec3 lin;
  if (g > 1.001) {
    // the brightened noise: a 13-tap bilateral (colour sigma from the noise through the curve's slope)
    float x0 = toSrgb(vec3(l.y)).r;
    float slope = (toSrgb(liftCurve(toLinear(vec3(x0 + 4.0 / 255.0)), g)).r - toSrgb(liftCurve(toLinear(vec3(max(0.0, x0 - 4.0 / 255.0))), g)).r) / (8.0 / 255.0);
    float sigma = l.z * max(slope, 1.0);
    vec3 c = toSrgb(liftCurve(toLinear(F), g)) * 255.0;
    if (sigma > denoise.x) {
      float sc = denoise.y * sigma; vec3 acc = vec3(0.0); float wsum = 0.0;
      for (int j = -2; j <= 2; j++) for (int i = -2; i <= 2; i++) {
        if (i * i + j * j > 4) continue;
        vec3 q = toSrgb(liftCurve(toLinear(texture(frame, p + vec2(float(i), float(j)) * frameTexel).rgb + (F - I)), g)) * 255.0;
        vec3 d = abs(q - c); float cd = d.r + d.g + d.b;
        float w = exp(-float(i * i + j * j) / (2.0 * denoise.z * denoise.z) - cd * cd / (2.0 * sc * sc));
        acc += w * q; wsum += w;
      }
      c = acc / wsum;
    }
    lin = toLinear(c / 255.0);
  } else {
    lin = toLinear(F);
  }
  vec4 k = texelFetch(relightLook, ivec2(0, 0), 0);
  vec4 k1 = texelFetch(relightLook, ivec2(1, 0), 0);
  lin *= exp2(k.x + vec3(k.y / 2.0 - k.z / 3.0, 2.0 * k.z / 3.0, -k.y / 2.0 - k.z / 3.0));
  float y = max(lumOf(lin), 1.0 / 1024.0);
  if (abs(k.w) > 1e-4) { float pv = exp2(k1.y); float yn = pv * pow(y / pv, exp2(k.w)); lin *= yn / y; y = yn; }
  if (abs(k1.x) > 1e-4) lin = y + exp2(k1.x) * (lin - y);
  return toSrgb(lin);
}`;

function mipmapped(gl, t) {
  gl.bindTexture(gl.TEXTURE_2D, t.tex);
  gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
  gl.generateMipmap(gl.TEXTURE_2D);
  return t;
}

// (frameTex, coeffs, refine, bg, w, h, strength, c: the declared constants, snap) -> {lift, look}
export function makeRelight(gl, targets) {
  let flip = 0; let first = true;
  const relight = (frameTex, coeffs, refine, bg, w, h, strength, c, snap) => {
    const kind = KINDS[bg.kind] ?? 0;
    const base = { frame: frameTex, coeffs, ...backgroundInputs(bg) };
    const m = targets.get("relight-moments", SIDE, SIDE, "rgba16f");
    draw(gl, variant(gl, MOMENTS, { REFINE: refine }), m, base);
    mipmapped(gl, m);
    const stat = (which, inputs) => {
      const t = targets.get(`relight-s${which}`, SIDE, SIDE, "rgba16f");
      draw(gl, variant(gl, STATS, { REFINE: refine, KIND: kind, WHICH: which }), t, {
        ...base, moments: m, upperShare: c.upper_share, bins: [c.histogram_low, c.histogram_high],
        nearLod: Math.max(0, Math.log2(SIDE * c.near_sigma * Math.sqrt(12))), farWeight: c.far_weight,
        noiseClip: c.noise_clip, frameSize: [w, h], ...inputs });
      return mipmapped(gl, t);
    };
    const [face, h0, h1, h2, h3, noise] = [0, 1, 2, 3, 4, 5].map((k) => stat(k, {}));
    const names = ["a", "b"];
    const liftPast = targets.get(`relight-lift-${names[1 - flip]}`, 1, 1, "rgba32f", "nearest");
    const lift = targets.get(`relight-lift-${names[flip]}`, 1, 1, "rgba32f", "nearest");
    draw(gl, variant(gl, LIFT, {}), lift, {
      moments: m, face, noise, h0, h1, h2, h3, past: liftPast, first, strength, smoothing: c.smoothing,
      bins: [c.histogram_low, c.histogram_high], quantile: c.highlight_quantile,
      lift: [c.lift_below, c.lift_gain, c.lift_face, c.lift_max],
      noiseRamp: [c.lift_noise, c.lift_noisy, c.lift_clean], noiseUnit: c.noise_unit });
    const lookPast = targets.get(`relight-look-${names[1 - flip]}`, 2, 1, "rgba32f", "nearest");
    const look = targets.get(`relight-look-${names[flip]}`, 2, 1, "rgba32f", "nearest");
    if (![c.gain_lum, c.gain_warm, c.gain_green, c.gain_spread, c.gain_chroma].some((g) => g !== 0)) {
      draw(gl, variant(gl, NO_LOOK, {}), look, {});  // every gain 0 (as shipped): no statistics, no look
      flip = 1 - flip; first = false;
      return { lift, look };
    }
    const [p1, p2, b1, b2, grey] = [6, 7, 8, 9, 10].map((k) => stat(k, { lift }));
    draw(gl, variant(gl, LOOK, {}), look, {
      p1, p2, b1, b2, grey, past: lookPast, snap: first || snap, strength, smoothing: c.smoothing,
      offsets: [c.offset_lum, c.offset_warm, c.offset_green, c.offset_spread], offsetChroma: c.offset_chroma,
      gains: [c.gain_lum, c.gain_warm, c.gain_green, c.gain_spread], gainChroma: c.gain_chroma,
      deads: [c.dead_lum, c.dead_warm, c.dead_green, c.dead_spread], deadChroma: c.dead_chroma,
      flat_: [c.flat_low, c.flat_high] });
    flip = 1 - flip; first = false;
    return { lift, look };
  };
  relight.reset = () => { first = true; };
  return relight;
}
