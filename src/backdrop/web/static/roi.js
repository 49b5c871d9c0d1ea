// Helpers for the network's crop in the page: the person's box from a mask (presenter placement)
// and the crop in the shaders' uv form. The crop itself comes from the person tracker
// (people.js): a close-up's box, or the whole frame.
"use strict";

// The box of the mask's person (alpha > 0.5) in frame pixels, the mask made on `crop` (frame
// pixels, x0 y0 x1 y1), with its pixel count n; null when nobody. One scan a frame serves the ROI
// and presenter placement.
export function personBox(mask, mw, mh, [cx0, cy0, cx1, cy1]) {
  let x0 = mw; let y0 = mh; let x1 = -1; let y1 = -1; let n = 0;
  for (let y = 0; y < mh; y += 1) {
    const row = y * mw;
    for (let x = 0; x < mw; x += 1) {
      if (mask[row + x] > 0.5) {
        n += 1; if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; y1 = y;
      }
    }
  }
  if (!n) return null;
  const sx = (cx1 - cx0) / mw; const sy = (cy1 - cy0) / mh;
  return { x0: cx0 + x0 * sx, y0: cy0 + y0 * sy, x1: cx0 + (x1 + 1) * sx, y1: cy0 + (y1 + 1) * sy, n };
}

// the crop as the shaders take it: (x0 / w, y0 / h, width / w, height / h), y down
export const cropUv = (crop, w, h) => (crop ? [crop[0] / w, crop[1] / h, (crop[2] - crop[0]) / w, (crop[3] - crop[1]) / h] : [0, 0, 1, 1]);
