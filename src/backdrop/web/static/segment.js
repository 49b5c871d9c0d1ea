// Segmentation in the browser: @mediapipe/tasks-vision's ImageSegmenter (WASM with SIMD, from
// the npm registry through the server's cache) running the same selfie .tflite file as the
// Python side. The frame is first drawn at the model's input size (stretched, as the Python
// pipeline's downscale), so browser and Python see the same pixels and give the same matte.
"use strict";

const INPUT = { "selfie": [256, 256], "selfie-landscape": [256, 144] };

export async function createSegmenter(local, model) {
  const runtime = local.runtimes && local.runtimes["tasks-vision"];
  if (!runtime) throw new Error("the server has no browser runtime cached (run: backdrop models --fetch web)");
  const { FilesetResolver, ImageSegmenter } = await import("/runtime/tasks-vision/vision_bundle.mjs");
  const fileset = await FilesetResolver.forVisionTasks("/runtime/tasks-vision/wasm");
  const res = await fetch(`/model/${encodeURIComponent(model)}`);
  if (!res.ok) throw new Error(`the server has no model ${model} cached`);
  const modelAssetBuffer = new Uint8Array(await res.arrayBuffer());
  const segmenter = await ImageSegmenter.createFromOptions(fileset, {
    baseOptions: { modelAssetBuffer, delegate: "CPU" },
    runningMode: "VIDEO", outputConfidenceMasks: true, outputCategoryMask: false,
  });
  const [iw, ih] = INPUT[model] || [256, 256];
  const small = new OffscreenCanvas(iw, ih);
  const ctx = small.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";  // an area-like downscale, as INTER_AREA on the Python side
  let ts = 0;
  return {
    runtime: `${runtime} (wasm)`,
    inputSize: [iw, ih],
    // source: the <video> (or any drawable); returns the person probability at the input size
    async segment(source) {
      ctx.drawImage(source, 0, 0, iw, ih);
      const image = ctx.getImageData(0, 0, iw, ih);
      ts = Math.max(ts + 1, Math.floor(performance.now()));
      const result = segmenter.segmentForVideo(image, ts);
      const masks = result.confidenceMasks;
      const mask = masks[masks.length - 1].getAsFloat32Array().slice();
      result.close();
      return { mask, width: iw, height: ih };
    },
    close() { segmenter.close(); },
  };
}
