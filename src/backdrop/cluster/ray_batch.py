"""The names ``backdrop.cluster.ray_batch`` has always offered, now living one concern per module.

Kept so existing imports (tests, scripts, pickled references) keep working. New code should
import from the modules themselves:

* :mod:`.driver` - :func:`run_batch` and the scheduling (:class:`~.driver.BatchRun`);
* :mod:`.inputs` - which files are inputs, output names, orphaned temp files;
* :mod:`.settings` - the settings hash that decides what a rerun redoes;
* :mod:`.jobs` - the worker-side tasks (one file, one chunk, the stitch) and the crash test hook;
* :mod:`.session` - Ray import, reachability, the private local instance, deferred SIGTERM;
* :mod:`.progress`, :mod:`.report` - progress lines and the end-of-batch table.
"""

from __future__ import annotations

from .driver import BatchOptions, BatchRun, run_batch
from .inputs import MEDIA_SUFFIXES, discover_inputs, output_pixel_format, output_rel, remove_orphans
from .jobs import CRASH_AFTER_FRAMES, CRASH_ENV, run_chunk, run_stitch, run_whole
from .progress import Progress
from .report import BatchItem, BatchReport
from .session import ClusterError, DeferredSigterm, check_reachable, import_ray, ray_session
from .settings import batch_settings_hash

__all__ = ["BatchItem", "BatchOptions", "BatchReport", "BatchRun", "CRASH_AFTER_FRAMES", "CRASH_ENV",
           "ClusterError", "DeferredSigterm", "MEDIA_SUFFIXES", "Progress", "batch_settings_hash",
           "check_reachable", "discover_inputs", "import_ray", "output_pixel_format", "output_rel", "ray_session",
           "remove_orphans", "run_batch", "run_chunk", "run_stitch", "run_whole"]
