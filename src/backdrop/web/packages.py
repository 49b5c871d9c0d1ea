"""The npm packages the on-device page loads, pinned, declared once.

Each entry names the files the page requests and the registry's ``dist.integrity`` for that
version (what ``npm view NAME@VERSION dist.integrity`` prints); :mod:`.npm` fetches and checks
them. The runtime was chosen by measurement in headless Chromium on this project's 2-core machine
(docs/benchmarks.md, "On-device runtimes"): LiteRT.js (``@litertjs/core``) runs our cached
``selfie_segmentation.tflite`` on WASM in 4.9 ms p50 (tasks-vision: 6.6 ms; onnxruntime-web
runs RVM at 160 ms), with output identical to the Python side's LiteRT (mean difference 2e-8,
IoU 1.0 on a shared portrait), and sends nothing anywhere (tasks-vision posts usage logs to a
Google endpoint, which our CSP would have to block).
"""

from __future__ import annotations

from .npm import WebPackage

LITERT = WebPackage(
    key="litert", name="@litertjs/core", version="2.5.3",
    integrity="sha512-PlGmbMOq9WitX7FO0jhbdJw9GthatsyuCQXjTt/wJZo0FLaw48q4tz8IwqgqCIkviYGr9OFDL1kCnN4nzWoyJQ==",
    # the relaxed-SIMD build, and the compat build for browsers without relaxed SIMD; one thread
    # (two measured no faster on two cores, and they need cross-origin isolation)
    files=("package.json", "dist/index.js",
           "wasm/litert_wasm_internal.js", "wasm/litert_wasm_internal.wasm",
           "wasm/litert_wasm_compat_internal.js", "wasm/litert_wasm_compat_internal.wasm"),
    licence="Apache-2.0", why="segmentation in the browser (LiteRT.js on WASM; the selfie .tflite)",
)

LITERT_WASM_UTILS = WebPackage(
    key="litert-wasm-utils", name="@litertjs/wasm-utils", version="2.5.3",
    integrity="sha512-4fJiw6tBQnIs+0jH/OQ16nYOiSl8/+zZnn5h2ul8aTKHi05sVqZW580Tmk78pC2kT39A9OYBVdFawteZ/sI1kQ==",
    files=("package.json", "dist/index.js"),
    licence="Apache-2.0", why="LiteRT.js's WASM loader (a dependency of @litertjs/core)",
)

PDFJS = WebPackage(
    key="pdfjs", name="pdfjs-dist", version="6.5.438",
    integrity="sha512-vg8Pw1x+AFKy4AMDvhuWl5cOYV8d698UoEANoFFhc79hqXDnZQqnOXoxw3HG907WHOg1JYOvLhP756boddFxpA==",
    files=("LICENSE", "package.json", "build/pdf.min.mjs", "build/pdf.worker.min.mjs"),
    licence="Apache-2.0", why="PDF slides rendered in the page (presenter mode)",
    optional=True,  # without it the page processes on-device all the same, minus PDF slides
)

WEB_PACKAGES: tuple[WebPackage, ...] = (LITERT, LITERT_WASM_UTILS, PDFJS)

BROWSER_MODELS = ("selfie", "selfie-landscape")
"""Segmenters the page can run (the .tflite files the Python side caches); the first is the default."""
TRACKER_MODELS = ("pose-detector", "pose-landmarks")
"""The person tracker's models the page runs too (the same files: issue 20)."""
