"""The npm packages the on-device page loads, pinned, declared once.

Each entry names the files the page requests and the registry's ``dist.integrity`` for that
version (what ``npm view NAME@VERSION dist.integrity`` prints); :mod:`.npm` fetches and checks
them. The runtime was chosen by measurement in headless Chromium on this project's 2-core machine
(docs/benchmarks.md, "On-device runtimes"): ``@mediapipe/tasks-vision`` runs our cached
``selfie_segmentation.tflite`` on WASM (SIMD) with output identical to the Python side's LiteRT
(mean difference < 1e-4, IoU 1.0 on a shared portrait), in one package with no dependencies.
"""

from __future__ import annotations

from .npm import WebPackage

TASKS_VISION = WebPackage(
    key="tasks-vision", name="@mediapipe/tasks-vision", version="1.1.0",
    integrity="sha512-ZJqh0wMKOINorfSffvDAxzyO1//c+FiG3IkzOdNDnLqvBB3DbMfj0bB/tys2SNf9S914sgoIbIpF4HTOi336cg==",
    files=("package.json", "vision_bundle.mjs",
           "wasm/vision_wasm_internal.js", "wasm/vision_wasm_internal.wasm",
           "wasm/vision_wasm_nosimd_internal.js", "wasm/vision_wasm_nosimd_internal.wasm"),
    licence="Apache-2.0", why="segmentation in the browser (WASM with SIMD; the selfie .tflite)",
)

PDFJS = WebPackage(
    key="pdfjs", name="pdfjs-dist", version="6.5.438",
    integrity="sha512-vg8Pw1x+AFKy4AMDvhuWl5cOYV8d698UoEANoFFhc79hqXDnZQqnOXoxw3HG907WHOg1JYOvLhP756boddFxpA==",
    files=("LICENSE", "package.json", "build/pdf.min.mjs", "build/pdf.worker.min.mjs"),
    licence="Apache-2.0", why="PDF slides rendered in the page (presenter mode)",
)

WEB_PACKAGES: tuple[WebPackage, ...] = (TASKS_VISION, PDFJS)

BROWSER_MODELS = ("selfie", "selfie-landscape")
"""Models the page can run (the .tflite files the Python side caches); the first is the default."""
