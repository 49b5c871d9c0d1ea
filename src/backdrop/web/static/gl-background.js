// GLSL shared by the passes that need the refined matte or the new background at some pixel:
// alphaAt() applies the guided filter's (A, b) (gl-refine.js) to the frame's grey level, and
// backgroundAt() samples the chosen background kind. Each pass that includes it binds the same
// uniforms through `backgroundInputs`.
"use strict";

export const KINDS = { colour: 0, image: 1, blur: 2, transparent: 3, presenter: 4 };

export const ALPHA_GLSL = `
uniform sampler2D frame;     // camera frame, full size, RGB
uniform sampler2D coeffs;    // guided-filter (A, b) at working size
uniform bool refine;         // false: the working matte upsampled bilinearly (coeffs.r = matte)
float alphaAt(vec2 p) {
  vec2 ab = texture(coeffs, p).rg;
  if (!refine) return clamp(ab.r, 0.0, 1.0);
  float I = dot(texture(frame, p).rgb, vec3(0.299, 0.587, 0.114));
  return clamp(ab.r * I + ab.g, 0.0, 1.0);
}`;

export const BACKGROUND_GLSL = `
uniform int kind;            // KINDS
uniform vec3 colour;         // kind colour, 0..1
uniform sampler2D picture;   // kind image / presenter: the picture or slide
uniform vec4 pictureFit;     // uv -> picture uv: scale.xy, offset.zw (cover for images, contain for slides)
uniform sampler2D blurred;   // kind blur: premultiplied (rgb * keep, keep), mipmapped
uniform float maxLod;
vec3 backgroundAt(vec2 p) {
  if (kind == 0) return colour;
  if (kind == 1 || kind == 4) {
    vec2 q = p * pictureFit.xy + pictureFit.zw;
    if (q.x < 0.0 || q.y < 0.0 || q.x > 1.0 || q.y > 1.0) return vec3(16.0 / 255.0);
    return texture(picture, q).rgb;
  }
  if (kind == 2) {
    // normalised convolution: the person was taken out before blurring, so they never smear
    // into their own background; where no background is near, a coarser level fills in
    vec4 s = texture(blurred, p);
    for (float lod = 1.0; lod <= 12.0; lod += 1.0) {
      if (s.a > 1e-3 || lod > maxLod) break;
      s = textureLod(blurred, p, lod);
    }
    return s.a > 1e-4 ? s.rgb / s.a : vec3(0.5);
  }
  return vec3(0.0);
}`;

// uniforms for BACKGROUND_GLSL from the page's background state
export function backgroundInputs(bg) {
  return {
    kind: KINDS[bg.kind] ?? 0, colour: bg.colour || [0, 0.69, 0.25],
    picture: bg.picture || bg.blurred || null, pictureFit: bg.fit || [1, 1, 0, 0],
    blurred: bg.blurred || bg.picture || null, maxLod: bg.maxLod || 0,
  };
}

// uv transform that makes a picture of size (pw, ph) cover (or, contain) an output of (w, h)
export function fitPicture(pw, ph, w, h, contain = false) {
  const a = (pw / ph) / (w / h);
  let sx = 1; let sy = 1;
  if ((a > 1) !== contain) sx = 1 / a; else sy = a;
  return [sx, sy, (1 - sx) / 2, (1 - sy) / 2];
}
