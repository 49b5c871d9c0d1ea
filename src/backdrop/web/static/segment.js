// Segmentation in the browser: LiteRT.js (@litertjs/core, WASM, from the npm registry through the
// server's cache) runs the same selfie .tflite file as the Python side's LiteRT. The frame comes
// at the model's input size (stretched and area-averaged on the GPU, gl-input.js, as the Python
// pipeline's downscale) and is scaled to [0, 1] floats (ModelSpec: mean 0, std 1, NHWC), so both
// sides see the same tensor and give the same matte (measured: mean difference 2e-8).
"use strict";
import { loadLiteRt, loadAndCompile, Tensor } from "@litertjs/core";

const INPUT = { "selfie": [256, 256], "selfie-landscape": [256, 144] };
let loaded = null;

export async function createSegmenter(local, model) {
  const runtime = local.runtimes && local.runtimes.litert;
  if (!runtime) throw new Error("the server has no browser runtime cached (run: backdrop models --fetch web)");
  loaded = loaded || loadLiteRt("/runtime/litert/wasm/", { threads: false });
  await loaded;
  const res = await fetch(`/model/${encodeURIComponent(model)}`);
  if (!res.ok) throw new Error(`the server has no model ${model} cached`);
  const compiled = await loadAndCompile(new Uint8Array(await res.arrayBuffer()), { accelerator: "wasm" });
  const [iw, ih] = INPUT[model] || [256, 256];
  const input = new Float32Array(iw * ih * 3);
  return {
    runtime: `${runtime} (wasm)`,
    inputSize: [iw, ih],
    // px: RGBA bytes at the input size, top row first; returns the person probability there
    async segment(px) {
      const t1 = performance.now();
      for (let i = 0, j = 0; i < iw * ih; i += 1, j += 4) {
        input[i * 3] = px[j] / 255; input[i * 3 + 1] = px[j + 1] / 255; input[i * 3 + 2] = px[j + 2] / 255;
      }
      const tensor = new Tensor(input, [1, ih, iw, 3]);
      try {
        const [out] = await compiled.run(tensor);
        const mask = out.toTypedArray().slice();  // out of the WASM heap, which is managed by hand
        out.delete();
        return { mask, width: iw, height: ih, ms: { model: performance.now() - t1 } };
      } finally {
        tensor.delete();
      }
    },
    close() { compiled.delete(); },
  };
}

// The person tracker's models (pose-detector, pose-landmarks: the same .tflite files as Python's),
// run by the same runtime. Outputs are told apart by their sizes (the signature names of a
// converted file are not the tensor names the Python side reads).
async function compile(model) {
  const res = await fetch(`/model/${encodeURIComponent(model)}`);
  if (!res.ok) throw new Error(`the server has no model ${model} cached`);
  return loadAndCompile(new Uint8Array(await res.arrayBuffer()), { accelerator: "wasm" });
}

async function runAll(compiled, input, shape) {
  const tensor = new Tensor(input, shape);
  try {
    const outs = await compiled.run(tensor);
    const arrays = outs.map((o) => { const a = o.toTypedArray().slice(); o.delete(); return a; });
    return arrays;
  } finally {
    tensor.delete();
  }
}

export async function createTrackerModels(segmenter, crop) {
  await loaded;
  const [detector, landmarker] = await Promise.all([compile("pose-detector"), compile("pose-landmarks")]);
  const rgbaToFloat = (px, n) => {
    const x = new Float32Array(n * n * 3);
    for (let i = 0; i < n * n; i += 1) { x[i * 3] = px[i * 4] / 255; x[i * 3 + 1] = px[i * 4 + 1] / 255; x[i * 3 + 2] = px[i * 4 + 2] / 255; }
    return x;
  };
  const bySize = (arrays, n) => arrays.find((a) => a.length === n);
  return {
    async detect(input) {
      const size = Math.round(Math.sqrt(input.length / 3));
      const outs = await runAll(detector, input, [1, size, size, 3]);
      const logits = outs.reduce((a, b) => (b.length < a.length ? b : a));
      const raw = outs.find((a) => a !== logits);
      return { raw, logits };
    },
    async landmarks(px) {
      const outs = await runAll(landmarker, rgbaToFloat(px, crop), [1, crop, crop, 3]);
      return { raw: bySize(outs, 195), flag: bySize(outs, 1), seg: bySize(outs, crop * crop), heat: bySize(outs, 64 * 64 * 39) };
    },
    async selfie(px) {  // the selfie network on the same crop (resampled when its input differs)
      const [iw, ih] = segmenter.inputSize;
      if (iw === crop && ih === crop) return (await segmenter.segment(px)).mask;
      const src = new Uint8Array(iw * ih * 4);
      for (let y = 0; y < ih; y += 1) for (let x = 0; x < iw; x += 1) {
        const i = (Math.min(crop - 1, Math.floor((y + 0.5) * crop / ih)) * crop + Math.min(crop - 1, Math.floor((x + 0.5) * crop / iw))) * 4;
        src.set(px.subarray(i, i + 4), (y * iw + x) * 4);
      }
      const m = (await segmenter.segment(src)).mask;
      const out = new Float32Array(crop * crop);
      for (let y = 0; y < crop; y += 1) for (let x = 0; x < crop; x += 1)
        out[y * crop + x] = m[Math.min(ih - 1, Math.floor((y + 0.5) * ih / crop)) * iw + Math.min(iw - 1, Math.floor((x + 0.5) * iw / crop))];
      return out;
    },
    close() { detector.delete(); landmarker.delete(); },
  };
}
