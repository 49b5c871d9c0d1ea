// Slides for presenter mode, rendered in the page: a PDF (pdf.js from the npm registry, served
// from the server's cache) or pictures, one per slide. Pages are rendered on demand at the
// output's height, so a 100-page deck costs one canvas, and never leave the browser.
"use strict";

export class Slides {
  constructor() { this.pages = []; this.pdf = null; this.index = 0; this.count = 0; this.cache = new Map(); }

  async load(files) {
    this.close();
    const list = [...files];
    if (list.length === 1 && (list[0].type === "application/pdf" || /\.pdf$/i.test(list[0].name))) {
      const pdfjs = await import("/runtime/pdfjs/build/pdf.min.mjs");
      pdfjs.GlobalWorkerOptions.workerSrc = "/runtime/pdfjs/build/pdf.worker.min.mjs";
      const data = new Uint8Array(await list[0].arrayBuffer());
      this.pdf = await pdfjs.getDocument({ data, isEvalSupported: false, disableFontFace: false }).promise;
      this.count = this.pdf.numPages;
    } else {
      for (const f of list) {
        if (!f.type.startsWith("image/")) throw new Error(`${f.name} is not a PDF or a picture`);
        this.pages.push(await createImageBitmap(f));
      }
      this.count = this.pages.length;
    }
    if (!this.count) throw new Error("no slides in what was chosen");
    this.index = 0;
    return this.count;
  }

  go(step) {
    if (!this.count) return this.index;
    this.index = Math.min(this.count - 1, Math.max(0, this.index + step));
    return this.index;
  }

  // the current slide as a texImage2D source with its size, or null while it renders
  async current(height = 1080) {
    if (!this.count) return null;
    if (!this.pdf) { const b = this.pages[this.index]; return { source: b, width: b.width, height: b.height }; }
    const key = `${this.index}@${height}`;
    if (this.cache.has(key)) return this.cache.get(key);
    const page = await this.pdf.getPage(this.index + 1);
    const base = page.getViewport({ scale: 1 });
    const viewport = page.getViewport({ scale: height / base.height });
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(viewport.width); canvas.height = Math.round(viewport.height);
    await page.render({ canvasContext: canvas.getContext("2d"), viewport }).promise;
    const slide = { source: canvas, width: canvas.width, height: canvas.height };
    this.cache.clear();
    this.cache.set(key, slide);
    return slide;
  }

  close() {
    for (const b of this.pages) if (b.close) b.close();
    if (this.pdf) this.pdf.destroy();
    this.pages = []; this.pdf = null; this.count = 0; this.index = 0; this.cache.clear();
  }
}

// Where the person goes over a slide (compose/backgrounds/presenter.py, placement "corner"):
// scaled by 0.42 with the centre of their box at 84% of the width, feet on the bottom edge,
// moved inwards so they stay whole. `box` is the person's box in frame pixels, smoothed.
export function presenterPlacement(box, frameW, frameH, cx = 0.84, scale = 0.42) {
  return (outW, outH) => {
    const s = scale * outH / frameH;
    const [x0, x1, bottom] = box ? [box.x0, box.x1, box.y1] : [0, frameW, frameH];
    const px = (x0 + x1) / 2;
    let tx = cx * outW - s * px;
    const margin = 0.02 * outW;
    if (s * (x1 - x0) + 2 * margin <= outW) tx = Math.min(Math.max(tx, margin - s * x0), outW - margin - s * x1);
    const ty = outH - s * (bottom + 1);
    return [s, tx, ty];
  };
}

// The person's box (roi.js personBox, frame pixels) smoothed over frames so the placed person
// does not jitter (0.8 of the past); the last box while nobody is found.
export function trackBox(prev, found) {
  if (!found) return prev;
  if (!prev) return { x0: found.x0, x1: found.x1, y1: found.y1 };
  const k = 0.8;
  return { x0: k * prev.x0 + (1 - k) * found.x0, x1: k * prev.x1 + (1 - k) * found.x1, y1: k * prev.y1 + (1 - k) * found.y1 };
}
