"""Which video files Backdrop reads and writes, and with which codec and encoder options.

Exists so that callers that only need to know what counts as a video (input scanning, option
checks before any output exists) get the suffix sets, the x264 presets and the codec choice
without the reader or writer; :mod:`backdrop.io.video_write` applies them.
"""

from __future__ import annotations

from ..errors import OptionError, OutputError

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi"}
VIDEO_INPUT_SUFFIXES = VIDEO_SUFFIXES | {".gif"}  # what we read as video (GIF in, never out)
#: what we write: AVI is read, never written (its muxer keeps one fixed frame rate, so the
#: source's timestamps (1/90000 time base, variable rate) cannot be kept; it failed or wrote
#: a header claiming 20x the frames)
VIDEO_OUTPUT_SUFFIXES = VIDEO_SUFFIXES - {".avi"}
UNSUPPORTED_OUTPUT_HINT = "use .mp4, .mov, .mkv or .webm"


def check_video_output_suffix(suffix: str, name: str) -> None:
    """One line for an output suffix we do not write (``.avi`` included)."""
    suffix = suffix.lower()
    if suffix == ".avi":
        raise OutputError(f"cannot write .avi output ({name}): AVI cannot keep the timestamps; "
                          f"{UNSUPPORTED_OUTPUT_HINT}")
    if suffix not in VIDEO_OUTPUT_SUFFIXES:
        raise OutputError(f"unsupported video output {name}: {UNSUPPORTED_OUTPUT_HINT}")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                "veryslow", "placebo")


def validate_encoder_options(crf: int, preset: str) -> None:
    """Refuse a ``crf`` outside 0..51 or an unknown x264 ``preset`` with one line.

    Called before any output exists: left to FFmpeg, a bad preset fails only once the encoder
    opens, mid-job, with a library traceback. The preset is checked whatever the codec, so a
    typo is caught even where it would be ignored (VP9, ProRes).
    """
    try:
        crf_ok = 0 <= crf <= 51
    except TypeError:
        crf_ok = False
    if not crf_ok:
        raise OptionError(f"{{option}} must be between 0 and 51, got {crf!r}", option="crf")
    if preset not in X264_PRESETS:
        raise OptionError(f"{{option}} must be one of {', '.join(X264_PRESETS)}; got {preset!r}", option="preset")


def choose_video_codec(suffix: str, pixel_format: str, width: int, height: int) -> tuple[str, str, dict]:
    """(codec, pix_fmt, options) for an output suffix and a pixel format rgb/rgba/gray."""
    odd = width % 2 or height % 2
    if pixel_format == "rgba":
        if suffix == ".mov":
            return "prores_ks", "yuva444p10le", {"profile": "4444", "vendor": "apl0"}
        if suffix == ".webm":
            return "libvpx-vp9", "yuva420p", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1",
                                              "auto-alt-ref": "0"}
        if suffix == ".mkv":
            return "ffv1", "bgra", {}
        raise OutputError(f"transparent video needs .mov (ProRes 4444), .webm (VP9) or .mkv (FFV1), not {suffix}")
    if suffix == ".webm":
        return "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8", "row-mt": "1"}
    return "libx264", ("yuv444p" if odd else "yuv420p"), {}
