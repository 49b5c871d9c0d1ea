"""Many files at once: ``backdrop batch`` on Ray (optional extra ``[cluster]``).

Importing this package does not import Ray; :func:`run_batch` does, and says how to install
it when it is missing. One concern per module: :mod:`.driver` (run_batch, scheduling),
:mod:`.inputs`, :mod:`.settings` (the settings hash), :mod:`.jobs` (worker tasks),
:mod:`.session` (Ray), :mod:`.chunking`, :mod:`.manifest`, :mod:`.progress`, :mod:`.report`.
"""

from .driver import run_batch
from .report import BatchItem, BatchReport
from .session import ClusterError

__all__ = ["BatchItem", "BatchReport", "ClusterError", "run_batch"]
