// The person tracker in the page, as tracking/people.py: BlazePose's detector finds people one at a
// time (each found one greyed out of its input before it runs again), each person is followed in
// an upright square crop from their own One Euro-smoothed landmarks, a close-up (hips below the
// frame) is left to the selfie network on its box, and a new person must be seen by the selfie
// network on the same crop. Every number comes from the server's declaration of the people stage
// (GET /config, "constants" and options). The frame never leaves the GPU but for the small
// inputs the models need (gl-warp.js); the models run in LiteRT.js (segment.js).
"use strict";
import { OneEuro, Roi, anchors, decodeDetections, decodeLandmarks, letterbox } from "./pose.js";

const BODY = 33;

export class PeopleTracker {
  // models: { detect(Float32Array 1xSxSx3) -> {raw, logits}, landmarks(Uint8 RGBA crop) -> outputs,
  //   selfie(Uint8 RGBA crop) -> Float32Array mask }, warp: { letterbox(size) -> Uint8 RGBA,
  //   crop(roi, size) -> Uint8 RGBA }; c: the declared constants, o: the declared option values
  constructor(models, warp, c, o) {
    Object.assign(this, { models, warp, c, maxPeople: o.max_people, redetectEvery: o.redetect_every });
    this.anchor = anchors(c.detector_size, c.detector_strides);
    this.nextId = 1;
    this.detections = 0;
    this.reset();
  }

  reset() { this.tracks = []; this.closeups = []; this.detectNow = true; this.sinceDetect = 0; this.mainId = null; }

  async landmarks(roi) {
    const px = this.warp.crop(roi, this.c.crop);
    const out = await this.models.landmarks(px);
    return { px, result: decodeLandmarks(out.raw, out.flag, out.seg, out.heat, roi, this.c.crop, this.c.heatmap) };
  }

  // the selfie network's mean over the person's mask, on the same crop (a stool read as a person: 0.02)
  async agrees(px, result) {
    const s = await this.models.selfie(px);
    let sum = 0; let n = 0;
    for (let i = 0; i < result.mask.length; i += 1) if (result.mask[i] > 0.5) { sum += s[i]; n += 1; }
    return n > 0 && sum / n >= this.c.agree;
  }

  async detect(w, h) {
    const c = this.c; const S = c.detector_size;
    this.sinceDetect = 0; this.detectNow = false; this.closeups = [];
    const rgba = this.warp.letterbox(S);
    const placed = letterbox(w, h, S);
    const taken = new Uint8Array(S * S);
    const toSmall = (x, y) => [(x / w * placed.w + placed.x) * S, (y / h * placed.h + placed.y) * S];
    const paintMask = (result) => {  // the person's mask > 0.3, grown, greyed out of the detector's input
      const inv = invert(result.roi.toFrame(c.crop)); const grow = Math.max(1, Math.round(0.02 * S));
      const hit = new Uint8Array(S * S);
      for (let y = 0; y < S; y += 1) for (let x = 0; x < S; x += 1) {
        const fx = ((x + 0.5) / S - placed.x) / placed.w * w; const fy = ((y + 0.5) / S - placed.y) / placed.h * h;
        const u = Math.round(inv[0] * fx + inv[1] * fy + inv[2]); const v = Math.round(inv[3] * fx + inv[4] * fy + inv[5]);
        if (u >= 0 && v >= 0 && u < c.crop && v < c.crop && result.mask[v * c.crop + u] > 0.3) hit[y * S + x] = 1;
      }
      for (let y = 0; y < S; y += 1) for (let x = 0; x < S; x += 1) {
        if (!hit[y * S + x]) continue;
        taken[y * S + x] = 1;
        grey(rgba, S, x - grow, y - grow, x + grow + 1, y + grow + 1);
      }
      return hit;
    };
    const paintBox = (box, body) => {
      const [x0, y0] = toSmall(box[0], box[1]); const [x1, y1] = toSmall(box[2], box[3]);
      const g = body ? x1 - x0 : c.paint_grow * (x1 - x0);
      grey(rgba, S, x0 - g, y0 - g, x1 + g, body ? S : y1 + g);
      if (body) {  // a close-up's body is taken: a weak detection on its shoulder is nobody new
        for (let y = Math.max(0, Math.floor(y0 - g)); y < S; y += 1)
          for (let x = Math.max(0, Math.floor(x0 - g)); x < Math.min(S, Math.ceil(x1 + g)); x += 1) taken[y * S + x] = 1;
      }
    };
    for (const t of this.tracks) if (t.result) paintMask(t.result);
    for (let round = 0; round < this.maxPeople + 2 && this.tracks.length < this.maxPeople; round += 1) {
      this.detections += 1;
      const input = new Float32Array(S * S * 3);
      for (let i = 0; i < S * S; i += 1) for (let k = 0; k < 3; k += 1) input[i * 3 + k] = rgba[i * 4 + k] * (2 / 255) - 1;
      const { raw, logits } = await this.models.detect(input);
      const [det] = decodeDetections(raw, logits, this.anchor, { size: S, keypoints: 4, minScore: c.detector_score,
        nmsIou: c.nms_iou, limit: 1, placed, w, h });
      if (!det) break;
      const [hip, point] = det.keypoints;
      const usable = Math.hypot(point[0] - hip[0], point[1] - hip[1]) >= 2;
      const closeup = usable && (hip[1] > c.closeup_in * h || Roi.fromPoints(hip, point).side > c.closeup_side * Math.max(w, h));
      if (!usable || closeup) {
        if (usable) this.closeups.push(Roi.fromPoints(hip, point));
        paintBox(det.box, usable);
        continue;
      }
      if (this.tracks.some((t) => Math.hypot(hip[0] - t.roi.cx, hip[1] - t.roi.cy) < c.same_person * t.roi.side)) {
        paintBox(det.box, false);
        continue;
      }
      const roi = Roi.fromPoints(hip, point);
      if (Math.abs(roi.rotation) > Math.PI / 4 && det.score < c.rotated_score) { paintBox(det.box, false); continue; }
      const { px, result } = await this.landmarks(roi);
      let inside = 0; let overlap = 0;
      const person = new Uint8Array(S * S);
      // the new person's mask in the detector's input, to see whether they are mostly someone tracked
      const inv = invert(roi.toFrame(c.crop));
      for (let y = 0; y < S; y += 1) for (let x = 0; x < S; x += 1) {
        const fx = ((x + 0.5) / S - placed.x) / placed.w * w; const fy = ((y + 0.5) / S - placed.y) / placed.h * h;
        const u = Math.round(inv[0] * fx + inv[1] * fy + inv[2]); const v = Math.round(inv[3] * fx + inv[4] * fy + inv[5]);
        if (u >= 0 && v >= 0 && u < c.crop && v < c.crop && result.mask[v * c.crop + u] > 0.3) {
          person[y * S + x] = 1; inside += 1; overlap += taken[y * S + x];
        }
      }
      const isNew = inside > 0 && overlap / inside < 0.5;
      if (result.presence <= c.presence || result.maskMean < c.min_mask || !isNew || !(await this.agrees(px, result))) {
        paintBox(det.box, false);
        continue;
      }
      const track = this.newTrack(roi);
      track.fresh = result;
      paintMask(result);
    }
  }

  newTrack(roi) {
    const t = { id: this.nextId, roi, aux: new OneEuro(...this.c.aux_filter), body: new OneEuro(...this.c.body_filter),
      result: null, fresh: null, person: null };
    this.nextId += 1;
    this.tracks.push(t);
    return t;
  }

  follow(t, result) {
    const lm = result.landmarks;
    const centre = lm[BODY]; const point = lm[BODY + 1];
    const scale = 2 * Math.hypot(point[0] - centre[0], point[1] - centre[1]);
    const inv = scale > 1e-6 ? 1 / scale : 1;
    const aux = t.aux.apply([centre[0], centre[1], point[0], point[1]], inv);
    t.roi = Roi.fromPoints([aux[0], aux[1]], [aux[2], aux[3]]);
    const body = t.body.apply(lm.slice(0, BODY).flatMap((p) => [p[0], p[1]]), inv);
    const marks = lm.slice(0, BODY).map((p, k) => [body[2 * k], body[2 * k + 1], p[2], p[3], p[4]]);
    const xs = marks.map((p) => p[0]); const ys = marks.map((p) => p[1]);
    t.result = result;
    t.person = { id: t.id, box: [Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)], landmarks: marks,
      presence: result.presence, main: false };
  }

  // one frame of w x h: the tracks present now, each with its landmarker pass (result) and person
  async step(w, h) {
    this.sinceDetect += 1;
    if (this.detectNow || this.sinceDetect >= this.redetectEvery) await this.detect(w, h);
    const alive = [];
    for (const t of this.tracks) {
      const result = t.fresh || (await this.landmarks(t.roi)).result;
      t.fresh = null;
      if (result.presence <= this.c.presence) { this.detectNow = true; continue; }
      if (result.landmarks[23][1] > this.c.closeup_out * h && result.landmarks[24][1] > this.c.closeup_out * h) {
        this.closeups.push(result.roi);
        continue;
      }
      this.follow(t, result);
      alive.push(t);
    }
    this.tracks = this.merge(alive);
    this.chooseMain();
    return this.tracks;
  }

  merge(tracks) {
    const kept = [];
    for (const t of [...tracks].sort((a, b) => a.id - b.id)) {
      const same = kept.some((k) => Math.hypot(t.roi.cx - k.roi.cx, t.roi.cy - k.roi.cy) < this.c.merge * Math.max(t.roi.side, k.roi.side)
        && t.roi.side / Math.max(k.roi.side, 1e-6) > 0.6 && t.roi.side / Math.max(k.roi.side, 1e-6) < 1.6);
      if (!same) kept.push(t);
    }
    return kept;
  }

  chooseMain() {
    if (!this.tracks.length) { this.mainId = null; return; }
    const largest = this.tracks.reduce((a, b) => (b.roi.side > a.roi.side ? b : a));
    const current = this.tracks.find((t) => t.id === this.mainId);
    if (!current || largest.roi.side > 2 * current.roi.side) this.mainId = largest.id;
    for (const t of this.tracks) if (t.person) t.person.main = t.id === this.mainId;
  }

  get people() { return this.tracks.filter((t) => t.person).map((t) => t.person); }

  // where the selfie network runs for close-ups: their crops' box, clipped, with a margin; null: all of it
  closeupBox(w, h) {
    if (!this.closeups.length) return null;
    const b = this.closeups.map((r) => r.bounds());
    const x0 = Math.min(...b.map((v) => v[0])); const y0 = Math.min(...b.map((v) => v[1]));
    const x1 = Math.max(...b.map((v) => v[2])); const y1 = Math.max(...b.map((v) => v[3]));
    const m = this.c.closeup_margin * Math.max(x1 - x0, y1 - y0);
    const box = [Math.max(0, Math.trunc(x0 - m)), Math.max(0, Math.trunc(y0 - m)), Math.min(w, Math.ceil(x1 + m)), Math.min(h, Math.ceil(y1 + m))];
    if (box[2] - box[0] < 8 || box[3] - box[1] < 8 || (box[2] - box[0]) * (box[3] - box[1]) > 0.7 * w * h) return null;
    return box;
  }
}

// the inverse of an affine [a, b, c, d, e, f]
export function invert([a, b, c, d, e, f]) {
  const det = a * e - b * d;
  return [e / det, -b / det, (b * f - c * e) / det, -d / det, a / det, (c * d - a * f) / det];
}

function grey(rgba, S, x0, y0, x1, y1) {
  for (let y = Math.max(0, Math.floor(y0)); y < Math.min(S, Math.ceil(y1)); y += 1)
    for (let x = Math.max(0, Math.floor(x0)); x < Math.min(S, Math.ceil(x1)); x += 1) {
      const i = (y * S + x) * 4;
      rgba[i] = 128; rgba[i + 1] = 128; rgba[i + 2] = 128;
    }
}
