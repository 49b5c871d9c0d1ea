"""Many files at once: ``backdrop batch`` on Ray (optional extra ``[cluster]``).

Importing this package does not import Ray; :func:`run_batch` does, and says how to install
it when it is missing.
"""

from .ray_batch import BatchItem, BatchReport, ClusterError, run_batch

__all__ = ["BatchItem", "BatchReport", "ClusterError", "run_batch"]
