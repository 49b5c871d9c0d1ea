"""Slides for presenter mode: PDF pages and image folders, bounded and rendered lazily.

Why lazily, at the output size: every page used to be rendered up front at 110 dpi, so a
553-byte PDF with one 14400-point page reached 4.8 GB and 5000 pages ran out of memory. Now
opening reads only the page count and sizes; a page is rendered when it is shown, straight at
the size it is shown at (never more pixels than the output), and only the page on screen is
kept. What cannot be shown is refused in one line before the job starts: no pages, more than
:data:`MAX_SLIDES`, a page side outside the PDF limits, or an aspect beyond 1:10.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import BackgroundError, install_hint

MAX_SLIDES = 2000  # a long course; the count of a 5000-page hostile file is refused in one line
MIN_POINTS, MAX_POINTS = 3.0, 14400.0  # PDF 1.7 (ISO 32000-1, Annex C): 3 to 14,400 units a side
MAX_ASPECT = 10.0  # wider or taller pages would make a presenter output of absurd size


def _check_page(name: str, k: int, w: float, h: float) -> None:
    if not all(math.isfinite(v) and MIN_POINTS <= v <= MAX_POINTS for v in (w, h)):
        raise BackgroundError(f"page {k + 1} of {name} is {w:g}x{h:g} points: page sides must be "
                              f"{MIN_POINTS:g} to {MAX_POINTS:g} points")
    if max(w / h, h / w) > MAX_ASPECT:
        raise BackgroundError(f"page {k + 1} of {name} is {w:g}x{h:g} points: slides wider or taller than "
                              f"{MAX_ASPECT:g}:1 are not supported")


class Slides:
    """A sequence of slides: ``len``, ``aspect()`` and ``fitted(k, w, h)`` (RGB uint8 HxWx3 of
    exactly ``w`` x ``h``, the slide fitted without cropping). ``slides[k]`` is the slide at
    its own size (images) or at 110 dpi (PDF pages), for callers that want the page itself."""

    def __init__(self, source: Path):
        self.source = Path(source)
        self._pdf = None
        self._files: list[Path] = []
        self._first: np.ndarray | None = None
        if self.source.is_dir() or self.source.suffix.lower() != ".pdf":
            self._open_images()
        else:
            self._open_pdf()

    # -- opening ------------------------------------------------------------------------------------
    def _open_images(self) -> None:
        from ..io.image import IMAGE_SUFFIXES, read_image
        from ..io.paths import is_hidden

        if self.source.is_dir():
            self._files = sorted(p for p in self.source.iterdir()
                                 if p.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(p.name))
        elif self.source.suffix.lower() in IMAGE_SUFFIXES:
            self._files = [self.source]
        if not self._files:
            raise BackgroundError(f"no slide images in {self.source}")
        if len(self._files) > MAX_SLIDES:
            raise BackgroundError(f"{len(self._files)} slide images in {self.source}: at most {MAX_SLIDES}")
        self._first = read_image(self._files[0])

    def _open_pdf(self) -> None:
        try:
            import pypdfium2 as pdfium
        except ImportError:
            raise BackgroundError(f"PDF slides need pypdfium2: {install_hint('slides')}") from None
        name = self.source.name
        try:
            self._pdf = pdfium.PdfDocument(str(self.source))
            count = len(self._pdf)
        except Exception as exc:  # pypdfium2 raises PdfiumError and friends
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if "PDFium: Success" in text:  # pdfium's word for a document without a page tree
                raise BackgroundError(f"slides {name} have no pages (an empty or damaged PDF)") from None
            raise BackgroundError(f"cannot read slides {name}: {text}") from None
        if count == 0:
            raise BackgroundError(f"slides {name} have no pages")
        if count > MAX_SLIDES:
            raise BackgroundError(f"slides {name} have {count} pages: at most {MAX_SLIDES}")
        for k in range(count):
            _check_page(name, k, *self._pdf.get_page_size(k))

    # -- reading ------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._pdf) if self._pdf is not None else len(self._files)

    def aspect(self) -> float:
        """Width / height of the first slide, without rendering it."""
        if self._pdf is not None:
            w, h = self._pdf.get_page_size(0)
            return w / h
        return self._first.shape[1] / self._first.shape[0]

    def _render(self, k: int, scale: float) -> np.ndarray:
        page = self._pdf[k]
        try:
            return np.asarray(page.render(scale=scale).to_pil().convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - a damaged page, whatever pdfium says of it
            raise BackgroundError(f"cannot render page {k + 1} of {self.source.name}: {exc}") from None
        finally:
            page.close()

    def __getitem__(self, k: int) -> np.ndarray:
        if self._pdf is not None:
            return self._render(k, 110 / 72)
        from ..io.image import read_image

        return self._first if k == 0 else read_image(self._files[k])

    def fitted(self, k: int, width: int, height: int) -> np.ndarray:
        """Slide ``k`` fitted into ``width`` x ``height``; a PDF page is rendered at that size."""
        from .backgrounds.presenter import fit_letterbox

        if self._pdf is None:
            return fit_letterbox(self[k], width, height)
        w, h = self._pdf.get_page_size(k)
        return fit_letterbox(self._render(k, min(width / w, height / h)), width, height)

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None
