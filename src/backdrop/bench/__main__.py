"""``python -m backdrop.bench``: the peak-memory subprocess, or ``backdrop bench`` itself.

:func:`backdrop.bench.peak_memory` runs ``python -m backdrop.bench --memory-child`` with the job on
stdin; any other arguments are those of ``backdrop bench``.
"""

import sys

from .memory import _memory_child

if __name__ == "__main__":  # pragma: no cover - the memory subprocess
    if sys.argv[1:] == ["--memory-child"]:
        sys.exit(_memory_child())
    from ..cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
