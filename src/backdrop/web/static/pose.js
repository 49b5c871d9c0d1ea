// The person tracker's models in the page, as the Python side reads them (models/ssd.py,
// models/pose.py, tracking/one_euro.py): SSD anchors, box decoding and weighted NMS for
// BlazePose's detector, the landmarker's 39 landmarks with heatmap refinement, the square crop
// (Roi) aligned to the body, and the One Euro filter. The numbers that tune them come from the
// server's declaration of the people stage ("constants"), not from copies here.
"use strict";

const sigmoid = (x) => 1 / (1 + Math.exp(-Math.max(-80, Math.min(80, x))));

// anchor centres (x, y in [0, 1]) in MediaPipe's order: layer, row, column, anchor
export function anchors(size, strides) {
  const out = [];
  for (let layer = 0; layer < strides.length;) {
    let last = layer; let perCell = 0;
    while (last < strides.length && strides[last] === strides[layer]) { perCell += 2; last += 1; }
    const cells = Math.ceil(size / strides[layer]);
    for (let y = 0; y < cells; y += 1)
      for (let x = 0; x < cells; x += 1)
        for (let k = 0; k < perCell; k += 1) out.push([(x + 0.5) / cells, (y + 0.5) / cells]);
    layer = last;
  }
  return out;
}

// the letterbox of a w x h frame in a size square: where the picture lies, as fractions of it
export function letterbox(w, h, size) {
  const s = size / Math.max(w, h);
  const nw = Math.max(1, Math.round(w * s)); const nh = Math.max(1, Math.round(h * s));
  const x0 = Math.floor((size - nw) / 2); const y0 = Math.floor((size - nh) / 2);
  return { x: x0 / size, y: y0 / size, w: nw / size, h: nh / size };
}

const iou = (a, b) => {
  const ix = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const iy = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = ix * iy;
  return inter > 0 ? inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter) : 0;
};

// detections (best first, at most limit) in frame pixels of a w x h frame, from the detector's
// raw boxes (N x (4 + 2K)) and score logits (N), the input letterboxed as `placed`
export function decodeDetections(raw, logits, anchor, { size, keypoints, minScore, nmsIou, limit, placed, w, h }) {
  const stride = raw.length / anchor.length;
  const cands = [];
  for (let i = 0; i < anchor.length; i += 1) {
    const score = sigmoid(Math.max(-100, Math.min(100, logits[i])));
    if (score < minScore) continue;
    const r = i * stride; const [ax, ay] = anchor[i];
    const cx = raw[r] / size + ax; const cy = raw[r + 1] / size + ay;
    const bw = raw[r + 2] / size; const bh = raw[r + 3] / size;
    if (bw < 0 || bh < 0) continue;
    const kps = [];
    for (let k = 0; k < keypoints; k += 1) kps.push([raw[r + 4 + 2 * k] / size + ax, raw[r + 5 + 2 * k] / size + ay]);
    cands.push({ box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], kps, score });
  }
  cands.sort((a, b) => b.score - a.score);
  const out = [];
  let rest = cands;
  while (rest.length && out.length < limit) {
    const best = rest[0];
    const near = rest.filter((c, i) => i === 0 || iou(best.box, c.box) > nmsIou);
    const total = near.reduce((s, c) => s + c.score, 0);
    const box = [0, 1, 2, 3].map((j) => near.reduce((s, c) => s + c.box[j] * c.score, 0) / total);
    const kps = best.kps.map((_, k) => [0, 1].map((j) => near.reduce((s, c) => s + c.kps[k][j] * c.score, 0) / total));
    const fx = (x) => (x - placed.x) / placed.w * w; const fy = (y) => (y - placed.y) / placed.h * h;
    out.push({ box: [fx(box[0]), fy(box[1]), fx(box[2]), fy(box[3])], keypoints: kps.map(([x, y]) => [fx(x), fy(y)]),
      score: best.score });
    rest = rest.filter((c, i) => i !== 0 && iou(best.box, c.box) <= nmsIou);
  }
  return out;
}

// a square crop: centre, side and rotation (radians, 0 = upright), frame pixels
export class Roi {
  constructor(cx, cy, side, rotation) { Object.assign(this, { cx, cy, side, rotation }); }

  static fromPoints(centre, point, scale = 1.25) {
    const dx = point[0] - centre[0]; const dy = point[1] - centre[1];
    let r = Math.PI / 2 - Math.atan2(-dy, dx);
    r -= 2 * Math.PI * Math.floor((r + Math.PI) / (2 * Math.PI));
    return new Roi(centre[0], centre[1], scale * 2 * Math.hypot(dx, dy), r);
  }

  // [a, b, c, d, e, f]: crop pixels (0..size) -> frame pixels, x' = a x + b y + c, y' = d x + e y + f
  toFrame(size) {
    const c = Math.cos(this.rotation); const s = Math.sin(this.rotation); const k = this.side / size;
    const a = c * k; const b = -s * k; const d = s * k; const e = c * k;
    return [a, b, this.cx - (a + b) * size / 2, d, e, this.cy - (d + e) * size / 2];
  }

  bounds() {
    const m = this.toFrame(1);
    const xs = []; const ys = [];
    for (const [u, v] of [[0, 0], [1, 0], [1, 1], [0, 1]]) { xs.push(m[0] * u + m[1] * v + m[2]); ys.push(m[3] * u + m[4] * v + m[5]); }
    return [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)];
  }
}

// the landmarker's outputs -> { presence, landmarks: 39 x [x, y, z, visibility, presence] in frame
// pixels, mask: Float32Array crop x crop (person probability) }
export function decodeLandmarks(raw, flag, seg, heat, roi, crop, heatSize) {
  const n = raw.length / 5; const pts = [];
  for (let k = 0; k < n; k += 1) pts.push([raw[5 * k] / crop, raw[5 * k + 1] / crop]);
  const ch = heat.length / (heatSize * heatSize);
  for (let k = 0; k < Math.min(n, ch); k += 1) {  // heatmap refinement: a 7x7 window, its peak >= 0.5
    const col = Math.trunc(pts[k][0] * heatSize); const row = Math.trunc(pts[k][1] * heatSize);
    if (col < 0 || col >= heatSize || row < 0 || row >= heatSize) continue;
    let sum = 0; let mx = 0; let sx = 0; let sy = 0;
    for (let r = Math.max(0, row - 3); r < Math.min(heatSize, row + 4); r += 1)
      for (let c = Math.max(0, col - 3); c < Math.min(heatSize, col + 4); c += 1) {
        const v = sigmoid(heat[(r * heatSize + c) * ch + k]);
        sum += v; mx = Math.max(mx, v); sx += c * v; sy += r * v;
      }
    if (mx >= 0.5 && sum > 0) pts[k] = [sx / heatSize / sum, sy / heatSize / sum];
  }
  const m = roi.toFrame(crop);
  const landmarks = pts.map(([x, y], k) => [m[0] * x * crop + m[1] * y * crop + m[2], m[3] * x * crop + m[4] * y * crop + m[5],
    raw[5 * k + 2] / crop * roi.side, sigmoid(raw[5 * k + 3]), sigmoid(raw[5 * k + 4])]);
  const mask = new Float32Array(seg.length);
  let mean = 0;
  for (let i = 0; i < seg.length; i += 1) { mask[i] = sigmoid(seg[i]); mean += mask[i]; }
  return { presence: flag[0], landmarks, mask, maskMean: mean / seg.length, roi };
}

// One Euro filter over an array of numbers (Casiez et al. 2012, MediaPipe's variant: the
// derivative from the previous raw value, scaled by 1 / object scale), 30 frames a second
export class OneEuro {
  constructor(minCutoff, beta, dCutoff = 1, rate = 30) { Object.assign(this, { minCutoff, beta, dCutoff, rate }); this.reset(); }
  reset() { this.raw = null; this.value = null; this.slope = null; }
  alpha(cutoff) { return 1 / (1 + this.rate / (2 * Math.PI * cutoff)); }
  apply(values, scale = 1) {
    if (!this.value || this.value.length !== values.length) {
      this.raw = values.slice(); this.value = values.slice(); this.slope = values.map(() => 0);
      return values.slice();
    }
    const ad = this.alpha(this.dCutoff);
    for (let i = 0; i < values.length; i += 1) {
      const d = (values[i] - this.raw[i]) * scale * this.rate;
      this.slope[i] += ad * (d - this.slope[i]);
      this.value[i] += this.alpha(this.minCutoff + this.beta * Math.abs(this.slope[i])) * (values[i] - this.value[i]);
    }
    this.raw = values.slice();
    return this.value.slice();
  }
}
