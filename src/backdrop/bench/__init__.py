"""``backdrop bench``: how fast is the pipeline, and how close to the limit of just moving video?

For each run (a given clip, or a clip generated at 480p/720p/1080p/4K by scaling a real clip of
people), the benchmark measures, in one process and one sitting:

* **per-stage time** in ms/frame (min, median, p95, mean, and the per-frame share when a stage
  does not run on every frame): ``decode`` is timed here, on the :class:`VideoReader` iteration
  (demux + decode + the frame as the job reads it: YUV planes for an RGB output); every other
  stage is whatever the pipeline's :class:`~backdrop.timing.StageTimer` recorded during the
  end-to-end run (``inference``,
  ``postprocess``, ``composite``, ``encode``, and any stage the pipeline adds later);
* **end-to-end frames/s** of :func:`backdrop.process_video` (the code path of ``backdrop video``),
  file to file, audio copied;
* **bare transcode frames/s** of the same clip with the same reader and writer, the same CRF,
  preset, container and audio copy, but no pipeline: the practical limit. The ratio
  ``e2e / transcode`` is the number to watch, since it mostly cancels out the machine;
* **live latency**: a :class:`Pipeline` built with ``live=True``, the time from a frame entering
  it to its composite leaving it, p50/p95;
* **peak RSS** of a clean subprocess that runs the end-to-end job on the clip.

The result is a JSON-able dict (:func:`run_bench`) that ``backdrop bench --json`` prints and
``benchmarks/run_all.py`` turns into ``docs/benchmarks.md``. Absolute numbers only mean something
with the machine next to them, so :func:`machine_info` is part of every result.

The package, one concern per module: :mod:`.clips` (sizes and the clips to measure),
:mod:`.measure` (the timed runs), :mod:`.memory` (peak RSS in a subprocess), :mod:`.summary`
(per-stage rows, :data:`STAGE_ORDER`), :mod:`.machine`, :mod:`.runner` (configuration and
orchestration) and :mod:`.report` (text and markdown). Everything callers use is importable from
``backdrop.bench`` itself.
"""

from __future__ import annotations

from ..stats import stats_ms
from .clips import (DEFAULT_FRAMES, DEFAULT_SIZES, DEFAULT_SOURCE, SIZES, default_source, make_clip, parse_size,
                    parse_sizes, shared_data_dir)
from .machine import describe_machine, machine_info
from .measure import WARMUP_FRAMES, bare_transcode, end_to_end, live_latency, output_suffix, time_decode
from .memory import peak_memory
from .report import format_text, update_markdown_section
from .runner import BenchConfig, Say, bench_clip, run_bench
from .summary import STAGE_ORDER, order_stages, stage_summary

__all__ = ["BenchConfig", "DEFAULT_FRAMES", "DEFAULT_SIZES", "DEFAULT_SOURCE", "SIZES", "STAGE_ORDER", "Say",
           "WARMUP_FRAMES", "bare_transcode", "bench_clip", "default_source", "describe_machine", "end_to_end",
           "format_text", "live_latency", "machine_info", "make_clip", "order_stages", "output_suffix",
           "parse_size", "parse_sizes", "peak_memory", "run_bench", "shared_data_dir", "stage_summary",
           "stats_ms", "time_decode", "update_markdown_section"]
