"""Video input and output with PyAV (FFmpeg): the one import for callers.

Reading streams frames one at a time as RGB uint8 HxWx3, rotated upright when the file carries a
display-rotation (phone videos), with each frame's own timestamp so variable-frame-rate timing
survives. Writing encodes H.264 (CRF), VP9, or the alpha formats ProRes 4444 (.mov) and VP9 with
alpha (.webm), reuses the input's timestamps (same frame count, same timing), and copies the
input's audio packets without re-encoding when the output container can hold the codec (else it
transcodes to AAC/Opus). Nothing here knows about mattes.

This module only gathers the names; the code lives by concern in :mod:`.video_read` (reader,
frames, probe), :mod:`.video_write` (writer), :mod:`.audio` (audio copying), :mod:`.formats`
(suffixes, codec choice, encoder option checks) and :mod:`.ffmpeg` (opening inputs under the
pixel cap, FFmpeg log and error helpers), so that each stays small and importers of
``backdrop.io.video`` need not change.
"""

from __future__ import annotations

from .audio import AUDIO_COPY_OK, AUDIO_FALLBACK, _AudioCopier, _plausible_audio
from .ffmpeg import _ffmpeg_log, _is_disk_full, _open_input, _raise_if_over_limit, _short
from .formats import (VIDEO_INPUT_SUFFIXES, VIDEO_SUFFIXES, X264_PRESETS, choose_video_codec,
                      validate_encoder_options)
from .video_read import MAX_BAD_PACKETS, Frame, VideoReader, probe, rotate_upright
from .video_write import VideoWriter

__all__ = [
    "AUDIO_COPY_OK", "AUDIO_FALLBACK", "MAX_BAD_PACKETS", "VIDEO_INPUT_SUFFIXES", "VIDEO_SUFFIXES",
    "X264_PRESETS", "Frame", "VideoReader", "VideoWriter", "choose_video_codec", "probe",
    "rotate_upright", "validate_encoder_options",
    # private, used by the batch chunker (backdrop.cluster.chunking)
    "_AudioCopier", "_is_disk_full", "_open_input",
    # private helpers, kept importable from here as before
    "_ffmpeg_log", "_plausible_audio", "_raise_if_over_limit", "_short",
]
