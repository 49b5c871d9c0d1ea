// ROI tracking in the page, as stages/roi.py: the network runs on a crop around the person (a
// person far from the camera gets most of the model's 256 pixels instead of a few dozen). The
// box comes from the last network mask (alpha > 0.5), grows by a 25% margin, takes the model's
// aspect and at least 20% of the frame, and is smoothed with Holt's double exponential smoothing
// (alpha 0.6, beta 0.3) and forecast one frame ahead. The whole frame is used again every 30
// frames, when the person touches a crop edge that is not the frame's (leaving the box), when
// nobody is found, and when the crop would cover more than 70% of the frame.
"use strict";

const MARGIN = 0.25; const REDETECT_EVERY = 30; const MIN_FRACTION = 0.2; const FULL_ABOVE = 0.7;
const ALPHA = 0.6; const BETA = 0.3;

export class RoiTracker {
  constructor(aspect) { this.aspect = aspect; this.reset(); }

  reset() { this.level = null; this.trend = null; this.box = null; this.sinceFull = 0; }

  // the crop [x0, y0, x1, y1] in frame pixels (y down) for the coming frame, or null (full frame)
  next(w, h) {
    if (!this.box || this.sinceFull >= REDETECT_EVERY) { this.sinceFull = 0; return null; }
    this.sinceFull += 1;
    return this.fit(this.level.map((v, i) => v + this.trend[i]), w, h);
  }

  // observe the network's mask (mw x mh, top row first) made on `used` (null: the whole frame),
  // and `found`, its person box from personBox()
  update(found, mask, mw, mh, used, w, h) {
    if (!found || found.n < 4 || (used && this.leaving(mask, mw, mh, used, w, h))) { this.reset(); return; }
    const bw = found.x1 - found.x0; const bh = found.y1 - found.y0;
    const target = [found.x0 - MARGIN * bw, found.y0 - MARGIN * bh, found.x1 + MARGIN * bw, found.y1 + MARGIN * bh];
    if (!this.level) { this.level = target; this.trend = [0, 0, 0, 0]; } else {
      const prev = this.level;
      this.level = target.map((v, i) => ALPHA * v + (1 - ALPHA) * (prev[i] + this.trend[i]));
      this.trend = this.level.map((v, i) => BETA * (v - prev[i]) + (1 - BETA) * this.trend[i]);
    }
    this.box = this.fit(this.level, w, h);
    if (!this.box) { this.level = null; this.trend = null; }
  }

  // the mask touches an edge of the crop that is not an edge of the frame (2% of that edge)
  leaving(mask, mw, mh, [x0, y0, x1, y1], w, h) {
    const frac = (get, len) => { let k = 0; for (let i = 0; i < len; i += 1) if (get(i) > 0.5) k += 1; return k / len; };
    return (x0 > 0 && frac((i) => mask[i * mw], mh) > 0.02) || (x1 < w && frac((i) => mask[i * mw + mw - 1], mh) > 0.02)
      || (y0 > 0 && frac((i) => mask[i], mw) > 0.02) || (y1 < h && frac((i) => mask[(mh - 1) * mw + i], mw) > 0.02);
  }

  fit([x0, y0, x1, y1], w, h) {
    const cx = (x0 + x1) / 2; const cy = (y0 + y1) / 2;
    let bw = Math.max(x1 - x0, 1); let bh = Math.max(y1 - y0, 1);
    if (bw / bh < this.aspect) bw = bh * this.aspect; else bh = bw / this.aspect;
    const minSide = MIN_FRACTION * Math.min(w, h);
    if (Math.min(bw, bh) < minSide) { const k = minSide / Math.min(bw, bh); bw *= k; bh *= k; }
    if (bw > w || bh > h) { bw = Math.min(bw, w); bh = Math.min(bh, h); }
    if (bw * bh > FULL_ABOVE * w * h) return null;
    const nx = Math.min(Math.max(cx - bw / 2, 0), w - bw); const ny = Math.min(Math.max(cy - bh / 2, 0), h - bh);
    return [Math.round(nx), Math.round(ny), Math.round(nx + bw), Math.round(ny + bh)];
  }
}

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
