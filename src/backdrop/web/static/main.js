// Backdrop page: where to process. "this device" runs the whole pipeline in the browser
// (local.js: WASM segmentation, WebGL2 passes, canvas.captureStream); "server" sends the camera to
// `backdrop serve` over WebRTC (app.js). The default is this device when the browser can
// (WebGL2 with float render targets, WebAssembly, and the runtime on the server's cache).
"use strict";

const $ = (id) => document.getElementById(id);

function canProcessHere() {
  if (typeof WebAssembly !== "object") return "this browser has no WebAssembly";
  const gl = document.createElement("canvas").getContext("webgl2");
  if (!gl) return "this browser has no WebGL2";
  if (!gl.getExtension("EXT_color_buffer_float")) return "WebGL2 here cannot render to float textures";
  if (!HTMLCanvasElement.prototype.captureStream) return "this browser cannot stream a canvas";
  return null;
}

async function choose() {
  const params = new URLSearchParams(location.search);
  let config = {};
  try { config = await (await fetch("/config")).json(); } catch (e) { /* the server path reports it */ }
  const asked = params.get("on") || (() => { try { return localStorage.getItem("backdrop-on"); } catch (e) { return null; } })();
  const why = !(config.local && config.local.available)
    ? "the server has no on-device runtime cached (run: backdrop models --fetch web)" : canProcessHere();
  let where = asked === "server" || asked === "device" ? asked : (config.process_on || "device");
  if (where === "device" && why) where = "server";
  $("on-device").disabled = Boolean(why);
  $("on-device").title = why || "segment and composite in this browser: nothing leaves it but the result";
  $(where === "device" ? "on-device" : "on-server").checked = true;
  document.body.dataset.where = where;
  for (const input of document.querySelectorAll('input[name="where"]')) {
    input.addEventListener("change", () => {
      try { localStorage.setItem("backdrop-on", input.value); } catch (e) { /* private mode */ }
      const next = new URLSearchParams(location.search);
      next.set("on", input.value);
      location.search = next.toString();  // a clean start in the other mode
    });
  }
  if (where === "device") {
    const { startLocal } = await import("/static/local.js");
    await startLocal(config);
  } else {
    if (asked === "device" && why) window.backdropNotice = `processing on the server: ${why}`;
    const s = document.createElement("script");
    s.src = "/static/app.js";
    document.body.append(s);
  }
}

choose().catch((e) => {
  if (window.backdrop && window.backdrop.errors) window.backdrop.errors.push(String(e));
  const el = $("error");
  el.textContent = String(e);
  el.hidden = false;
});
