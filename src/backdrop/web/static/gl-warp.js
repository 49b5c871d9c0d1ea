// The person tracker's model inputs, warped on the GPU from the camera texture and read back (the
// models run in WASM): the detector's letterboxed square (the picture area-averaged into it, black
// around it, as models/ssd.py's letterbox) and the landmarker's crop aligned to the body (an affine
// warp with the edge replicated, as models/pose.py's crop through cv2.warpAffine). Each output
// pixel averages NxN taps over its footprint in the frame, so a large shrink does not alias.
"use strict";
import { variant, draw } from "./gl.js";

const FRAG = `
uniform sampler2D frame;
uniform vec2 frameSize;      // w, h in pixels
uniform vec3 rowX;           // output pixel (u, v) -> frame pixel x = rowX . (u, v, 1) (OpenCV pixel indices)
uniform vec3 rowY;
uniform float size;          // output side in pixels
void main() {
  vec2 o = uv * size - 0.5;  // output pixel index; row 0 of the read-back is the crop's top
  vec4 acc = vec4(0.0);
  float inside = 0.0;
  for (int j = 0; j < N; j++)
    for (int i = 0; i < N; i++) {
      vec2 q = o + (vec2(float(i), float(j)) + 0.5) / float(N) - 0.5;
      vec2 p = vec2(dot(rowX, vec3(q, 1.0)), dot(rowY, vec3(q, 1.0)));
      vec2 t = (p + 0.5) / frameSize;
#if ZERO_BORDER
      float in_ = (t.x >= 0.0 && t.y >= 0.0 && t.x <= 1.0 && t.y <= 1.0) ? 1.0 : 0.0;
#else
      float in_ = 1.0;
#endif
      acc += texture(frame, vec2(t.x, 1.0 - t.y)) * in_;
    }
  outColor = vec4(acc.rgb / float(N * N), 1.0);
}`;

export function makeWarp(gl, targets) {
  const buffers = {};
  // m: [a, b, c, d, e, f], output pixel -> frame pixel; scale: frame pixels per output pixel
  const warp = (frameTex, w, h, m, size, scale, zeroBorder) => {
    const out = targets.get(`warp-${size}`, size, size, "rgba8", "nearest");
    const n = Math.max(1, Math.min(6, Math.ceil(scale / 2)));
    draw(gl, variant(gl, FRAG, { N: n, ZERO_BORDER: zeroBorder }), out,
      { frame: frameTex, frameSize: [w, h], rowX: m.slice(0, 3), rowY: m.slice(3, 6), size });
    const px = buffers[size] || (buffers[size] = new Uint8Array(size * size * 4));
    gl.bindFramebuffer(gl.FRAMEBUFFER, out.fbo);
    gl.readPixels(0, 0, size, size, gl.RGBA, gl.UNSIGNED_BYTE, px);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    return px.slice();
  };
  return {
    // the frame letterboxed into a size square (black border)
    letterbox(frameTex, w, h, size) {
      const s = size / Math.max(w, h);
      const nw = Math.max(1, Math.round(w * s)); const nh = Math.max(1, Math.round(h * s));
      const x0 = Math.floor((size - nw) / 2); const y0 = Math.floor((size - nh) / 2);
      const kx = w / nw; const ky = h / nh;  // output pixel index -> frame pixel index, area-aligned
      return warp(frameTex, w, h, [kx, 0, (0.5 - x0) * kx - 0.5, 0, ky, (0.5 - y0) * ky - 0.5], size, Math.max(kx, ky), true);
    },
    // the roi's crop (pose.js Roi), size x size, edge replicated
    crop(frameTex, w, h, roi, size) {
      return warp(frameTex, w, h, roi.toFrame(size), size, roi.side / size, false);
    },
  };
}
