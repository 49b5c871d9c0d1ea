// The network's input, made on the GPU from the camera texture: an area average (as the Python
// side's INTER_AREA downscale) to the model's input size, flipped to top-row-first, read back as
// RGBA bytes. This is the one read-back per frame, 256 x 256 x 4 bytes: the model runs in WASM
// on the CPU. Measured alternatives under software WebGL (load 4-5): drawing the <video> into a
// 2D canvas and calling getImageData, 38-70 ms against 30; VideoFrame.copyTo of the camera's NV12
// planes and a JS area average, 88 ms (the frame lives in GPU memory there, so it is a read-back too).
"use strict";
import { variant, draw } from "./gl.js";

const FRAG = `
uniform sampler2D frame;
uniform vec2 srcTexel;       // one camera pixel in uv
uniform vec2 footprint;      // camera pixels per output pixel, per axis: NX x NY taps (defines)
uniform vec4 crop;           // the ROI in frame uv, y down: x0, y0, width, height (roi.js)
void main() {
  vec2 down = crop.xy + uv * crop.zw;  // row 0 of the read-back is the crop's top row
  vec2 p = vec2(down.x, 1.0 - down.y);
  vec4 acc = vec4(0.0);
  for (int j = 0; j < NY; j++)
    for (int i = 0; i < NX; i++) {
      vec2 o = (vec2(float(i), float(j)) + 0.5) / vec2(NX, NY) - 0.5;
      acc += texture(frame, p + o * footprint * srcTexel);
    }
  outColor = acc / float(NX * NY);
}`;

export function makeInput(gl, targets) {
  let pixels = null;
  // bilinear taps see 2x2 texels each: ceil(footprint / 2) taps per axis average the footprint
  const taps = (n) => Math.max(1, Math.min(8, Math.ceil(n / 2)));
  return (frameTex, w, h, iw, ih, crop = [0, 0, 1, 1]) => {
    const out = targets.get("model-input", iw, ih, "rgba8", "nearest");
    const fx = crop[2] * w / iw; const fy = crop[3] * h / ih;
    draw(gl, variant(gl, FRAG, { NX: taps(fx), NY: taps(fy) }), out,
      { frame: frameTex, srcTexel: [1 / w, 1 / h], footprint: [fx, fy], crop });
    if (!pixels || pixels.length !== iw * ih * 4) pixels = new Uint8Array(iw * ih * 4);
    gl.bindFramebuffer(gl.FRAMEBUFFER, out.fbo);
    gl.readPixels(0, 0, iw, ih, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
    gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    return pixels;
  };
}
