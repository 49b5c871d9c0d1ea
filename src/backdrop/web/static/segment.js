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
