"""What became of each file of a batch, and the end-of-batch table.

Plain data, kept apart from Ray and the driver: the CLI prints a :class:`BatchReport`, the
tests read its items, and neither needs anything else of the batch machinery to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BatchItem:
    """One input file and what became of it."""

    src: Path
    rel: str  # output path relative to the output folder (POSIX), the manifest key
    dst: Path
    media: str  # "video" or "image"
    status: str = "pending"  # done | skipped | failed
    frames: int = 0
    seconds: float = 0.0
    reason: str = ""
    note: str = ""
    chunks: int = 1
    input_sha256: str = ""
    est_frames: int = 0
    truncated: bool = False  # the input was cut short or damaged: the output has what decoded

    @property
    def label(self) -> str:
        """The status as the table and the progress lines show it."""
        if self.truncated and self.status in ("done", "skipped"):
            return f"{self.status} (input truncated)"
        return self.status


@dataclass
class BatchReport:
    items: list[BatchItem] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def ok(self) -> bool:
        return self.count("failed") == 0

    def table(self) -> str:
        """The end-of-batch summary: one row per file, reasons for skips and failures."""
        rows = [("STATUS", "FRAMES", "SECONDS", "CHUNKS", "FILE", "REASON")]
        for i in self.items:
            rows.append((i.label, str(i.frames) if i.status == "done" else "-",
                         f"{i.seconds:.1f}" if i.status == "done" else "-",
                         str(i.chunks) if i.status == "done" else "-", i.rel,
                         i.reason or i.note))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        lines = []
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]),
                     r[3].rjust(widths[3]), r[4].ljust(widths[4]), r[5]]
            lines.append("  ".join(cells).rstrip())
        lines.append(self.totals())
        return "\n".join(lines)

    def totals(self) -> str:
        cut = sum(1 for i in self.items if i.truncated and i.status == "done")
        done = f"{self.count('done')} done" + (f" ({cut} from truncated inputs)" if cut else "")
        return (f"{done}, {self.count('skipped')} skipped, {self.count('failed')} failed "
                f"(of {len(self.items)}) in {self.seconds:.1f} s")
