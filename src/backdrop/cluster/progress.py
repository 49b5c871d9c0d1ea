"""Progress of a whole batch: frames across every file, and one line per finished file.

Apart from the driver so that how progress looks (a tqdm bar on a terminal, plain lines in a
log) can change without touching scheduling.
"""

from __future__ import annotations

import sys

from .report import BatchItem


class Progress:
    """Frames done across the whole batch: a bar on a terminal, a line per file otherwise."""

    def __init__(self, total_files: int, quiet: bool):
        from tqdm import tqdm

        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.total_files = total_files
        self.files_done = 0
        self.bar = tqdm(total=0, unit="frame", desc="batch", disable=quiet or not self.tty, dynamic_ncols=True,
                        leave=False)

    def add_total(self, n: int) -> None:
        if n > 0 and not self.bar.disable:
            self.bar.total = (self.bar.total or 0) + n
            self.bar.refresh()

    def frames(self, n: int) -> None:
        if n > 0:
            self.bar.update(n)

    def file(self, item: BatchItem) -> None:
        self.files_done += 1
        if self.quiet:
            return
        extra = f"{item.frames} frames, {item.seconds:.1f} s" if item.status == "done" else item.reason
        line = f"backdrop: [{self.files_done}/{self.total_files}] {item.label} {item.rel} ({extra})"
        if self.tty:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()
