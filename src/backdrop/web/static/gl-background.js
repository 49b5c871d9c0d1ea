// GLSL shared by the passes that need the refined matte or the new background at some pixel:
// alphaAt() applies the guided filter's (A, b) (gl-refine.js) to the frame's grey level, and
// backgroundAt() samples the chosen background kind. Each pass that includes it binds the same
// uniforms through `backgroundInputs`.
"use strict";

export const KINDS = { colour: 0, image: 1, blur: 2, transparent: 3, presenter: 4, matte: 5 };  // matte: alpha as grey (checks)

export const ALPHA_GLSL = `
uniform sampler2D frame;     // camera frame, full size, RGB
uniform sampler2D coeffs;    // guided-filter (A, b) and the network's bounds (lowest, highest) at working size
// REFINE (a define) 0: the working matte upsampled bilinearly (coeffs.r = matte)
float alphaFrom(vec2 p, vec3 rgb) {
  vec4 ab = texture(coeffs, p);
#if REFINE
  // A * grey + b, between the network's own bounds (B, A channels; gl-refine.js)
  return clamp(ab.r * dot(rgb, vec3(0.299, 0.587, 0.114)) + ab.g, ab.b, ab.a);
#else
  return clamp(ab.r, 0.0, 1.0);
#endif
}
float alphaAt(vec2 p) { return alphaFrom(p, texture(frame, p).rgb); }`;

export const BACKGROUND_GLSL = `
// KIND (a define): one of KINDS
uniform vec3 colour;         // kind colour, 0..1
uniform sampler2D picture;   // kind image / presenter: the picture or slide
uniform vec4 pictureFit;     // uv -> picture uv: scale.xy, offset.zw (cover for images, contain for slides)
uniform sampler2D blurred;   // kind blur: premultiplied (rgb * keep, keep), mipmapped
uniform float coarseLod;
vec3 backgroundAt(vec2 p) {
#if KIND == 1 || KIND == 4
  vec2 q = p * pictureFit.xy + pictureFit.zw;
  if (q.x < 0.0 || q.y < 0.0 || q.x > 1.0 || q.y > 1.0) return vec3(16.0 / 255.0);
  return texture(picture, q).rgb;
#elif KIND == 2
  // normalised convolution: the person was taken out before blurring, so they never smear
  // into their own background; where no background is near, a coarse level (~8x8) fills in
  vec4 s = texture(blurred, p);
  if (s.a <= 1e-3) s = textureLod(blurred, p, coarseLod);
  return s.a > 1e-4 ? s.rgb / s.a : vec3(0.5);
#else
  return colour;
#endif
}`;

// uniforms for BACKGROUND_GLSL from the page's background state
export function backgroundInputs(bg) {
  return {
    colour: bg.colour || [0, 0.69, 0.25],
    picture: bg.picture || bg.blurred || null, pictureFit: bg.fit || [1, 1, 0, 0],
    blurred: bg.blurred || bg.picture || null, coarseLod: bg.coarseLod || 0,
  };
}

// uv transform that makes a picture of size (pw, ph) cover (or, contain) an output of (w, h)
export function fitPicture(pw, ph, w, h, contain = false) {
  const a = (pw / ph) / (w / h);
  let sx = 1; let sy = 1;
  if ((a > 1) !== contain) sx = 1 / a; else sy = a;
  return [sx, sy, (1 - sx) / 2, (1 - sy) / 2];
}
