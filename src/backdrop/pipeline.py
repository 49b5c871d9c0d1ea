"""The Pipeline: segmenter -> matte stages -> compositor, with per-stream state.

A frame flows one way. ``Pipeline.matte(frame)`` returns the matte of a frame (float32 HxW in
[0, 1]); ``Pipeline(frame)`` returns the composite (RGB uint8 HxWx3, or RGBA for a transparent
background, or the 8-bit matte for ``background="matte"``). Everything that lives across frames
is in ``self.state`` (a :class:`StreamState`), so two pipelines never share it; the web server
builds one per peer. ``Pipeline.stream`` is the file-mode loop, which may hold one frame back
for the look-ahead flicker filter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import cv2
import numpy as np

from .compose.background import Background, parse_background
from .compose.composite import blend, to_matte_image, to_rgba
from .errors import InputError, OptionError
from .models import DEFAULT_MODEL, Segmenter, load_model
from .timing import StageTimer

T = TypeVar("T")


@dataclass
class PipelineOptions:
    """Every switch of the pipeline; the CLI maps its flags 1:1 onto these fields."""

    model: str = DEFAULT_MODEL
    threads: int | None = None
    quiet: bool = False

    @classmethod
    def raw(cls, **overrides: Any) -> "PipelineOptions":
        """The bare network: every matte stage off, bilinear upsampling. The baseline that
        ``backdrop eval``/``bench`` compare the default pipeline against (CLI: ``--raw``)."""
        return cls(**overrides)

    def validate(self) -> "PipelineOptions":
        if self.threads is not None and not 1 <= int(self.threads) <= 256:
            raise OptionError(f"--threads must be between 1 and 256, got {self.threads}")
        return self


@dataclass
class StreamState:
    """Everything one stream carries from frame to frame."""

    index: int = -1
    inferences: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def check_frame(frame: np.ndarray) -> np.ndarray:
    """Frames are RGB uint8 HxWx3; say so clearly when they are not."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise InputError(f"frames must be RGB uint8 HxWx3 arrays, got {desc}")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InputError("frame has no pixels")
    return frame


class Pipeline:
    """Segment, refine and composite frames of one stream.

    >>> p = Pipeline(background="#00b140")   # doctest: +SKIP
    >>> out = p(frame)                        # RGB uint8 in, RGB uint8 out
    """

    def __init__(self, background: Any = None, model: str | None = None, *,
                 options: PipelineOptions | None = None, segmenter: Segmenter | None = None,
                 live: bool = False, **overrides: Any):
        opts = options or PipelineOptions()
        if model is not None:
            overrides["model"] = str(model)
        unknown = set(overrides) - {f.name for f in fields(PipelineOptions)}
        if unknown:
            raise OptionError(f"unknown pipeline option(s): {', '.join(sorted(unknown))}")
        self.options = replace(opts, **overrides).validate()
        self.live = live
        self.segmenter = segmenter or load_model(self.options.model, threads=self.options.threads,
                                                 quiet=self.options.quiet)
        self.background: Background = parse_background(background)
        self.state = StreamState()
        self.timer = StageTimer()

    # -- mattes -------------------------------------------------------------------------------
    def matte(self, frame: np.ndarray) -> np.ndarray:
        """Matte of one frame: float32 HxW in [0, 1] at the frame's size (state advances)."""
        check_frame(frame)
        self.state.index += 1
        with self.timer("inference"):
            low = self.segmenter.infer(frame)
            self.state.inferences += 1
        h, w = frame.shape[:2]
        with self.timer("postprocess"):
            matte = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
        return matte

    # -- compositing --------------------------------------------------------------------------
    @property
    def output_kind(self) -> str:
        """``rgb``, ``rgba`` or ``gray``: what :meth:`composite` returns."""
        return {"composite": "rgb", "transparent": "rgba", "matte": "gray"}[self.background.mode]

    def composite(self, frame: np.ndarray, matte: np.ndarray, index: int | None = None) -> np.ndarray:
        index = self.state.index if index is None else index
        with self.timer("composite"):
            mode = self.background.mode
            if mode == "matte":
                return to_matte_image(matte)
            if mode == "transparent":
                return to_rgba(frame, matte)
            bg = self.background.render(index, frame, matte)
            return blend(frame, bg, matte)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.composite(frame, self.matte(frame))

    def stream(self, items: Iterable[T], image_of: Callable[[T], np.ndarray] = lambda x: x
               ) -> Iterator[tuple[T, np.ndarray, np.ndarray]]:
        """File-mode loop: yields ``(item, matte, output)`` for each item, in order."""
        for i, item in enumerate(items):
            frame = image_of(item)
            matte = self.matte(frame)
            yield item, matte, self.composite(frame, matte, i)

    def reset(self) -> None:
        """Start a new stream: forget all per-stream state."""
        self.state = StreamState()
        self.segmenter.reset()

    def close(self) -> None:
        self.background.close()

    def stats(self) -> dict[str, Any]:
        n = self.state.index + 1
        return {"frames": n, "inferences": self.state.inferences,
                "skipped_fraction": (1 - self.state.inferences / n) if n else 0.0}
