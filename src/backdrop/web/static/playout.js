// Shared by the page (server mode) and the viewer: how a received video is played.
"use strict";

// Play the processed video as soon as it is decoded: a live picture of oneself wants the least
// delay, not the smoothest playout (jitterBufferTarget, W3C webrtc-extensions; older Chrome:
// playoutDelayHint). Unsupported browsers keep their default buffer.
window.backdropLowLatency = function lowLatency(receiver) {
  if (!receiver || !receiver.track || receiver.track.kind !== "video") return;
  try {
    if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = 0;
    else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = 0;
  } catch (err) {
    console.debug("low-latency playout not available", err);
  }
};
