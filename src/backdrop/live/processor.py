"""The live processor: a low-latency Pipeline plus runtime settings, changed between two frames.

A live stream cannot be restarted to change its background: the call is running. So the settings
(:class:`~backdrop.live.settings.LiveSettings`) are applied between two frames. Heavy work
(decoding a background image, loading a model) happens in the caller's thread inside
:meth:`LiveProcessor.update`, never in the processing thread, so a change costs the video at most
the swap of two references.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from ..compose.backgrounds import parse_background
from ..engine import Pipeline, PipelineOptions
from ..models import load_model
from .settings import LiveSettings, apply_changes, check_background, slide_step

TIMER_RESET_FRAMES = 600  # Pipeline.timer keeps every sample; a live stream trims it regularly


class LiveProcessor:
    """A low-latency Pipeline plus runtime settings, safe to update from another thread.

    ``processor(frame)`` is called by the single processing thread; ``update(changes)`` by any
    other thread. ``update`` validates and builds the new background/model eagerly (so errors
    reach the caller, and the cost is not paid by a video frame) and parks them; the next frame
    swaps them in. ``resolve`` maps a background spec to what :func:`parse_background` takes,
    which is how the web server turns an upload id into the file in its temp dir.
    """

    def __init__(self, settings: LiveSettings | None = None, *, options: PipelineOptions | None = None,
                 pipeline: Pipeline | None = None, allow_files: bool = True,
                 resolve: Callable[[str], Any] | None = None,
                 known_uploads: Callable[[str], bool] | None = None, upscale: int = 0):
        self.settings = settings or LiveSettings()
        self.options = options or PipelineOptions(model=self.settings.model, quiet=True)
        if options is not None and settings is not None and settings.model != options.model:
            self.options = replace(options, model=settings.model)
        self.allow_files = allow_files
        self.resolve = resolve or (lambda spec: spec)
        self.known_uploads = known_uploads
        self._lock = threading.Lock()
        self._pending: dict[str, Any] = {}
        self._target = self.settings
        self._frames = 0
        if pipeline is None:
            check_background(self.settings.background, True, None)
            pipeline = Pipeline(background=self.resolve(self.settings.background), options=self.options,
                                live=True)
        self.pipeline = pipeline
        # --upscale: x2 super-resolution of the finished frame, the last step (after the mirror)
        self.upscaler = None
        if upscale:
            from ..superres import Upscaler

            self.upscaler = Upscaler(upscale, threads=self.options.threads or 2)

    @property
    def target(self) -> LiveSettings:
        """The settings as last requested (applied at the next frame)."""
        with self._lock:
            return self._target

    def update(self, changes: Mapping[str, Any]) -> LiveSettings:
        """Validate ``changes``, prepare what they need, and queue them for the next frame."""
        with self._lock:
            base = self._target
        new = apply_changes(base, changes, allow_files=self.allow_files, known_uploads=self.known_uploads)
        pending: dict[str, Any] = {}
        if "slide" in changes:
            pending["slide"] = slide_step(changes["slide"])
        if new.background != base.background:
            pending["background"] = parse_background(self.resolve(new.background))
        if new.model != base.model:
            pending["segmenter"] = load_model(new.model, threads=self.options.threads, quiet=True)
        tuned = {k: v for k, v in new.tuning if k in changes}
        if tuned:
            pending["options"] = tuned
        with self._lock:
            old = self._pending
            if "background" in pending and "background" in old:
                old.pop("background").close()
            if "slide" in pending and "slide" in old:
                pending["slide"] += old.pop("slide")
            if "options" in pending and "options" in old:
                pending["options"] = {**old.pop("options"), **pending["options"]}
            old.update(pending)
            self._target = new
        return new

    def _apply_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            target = self._target
        if "background" in pending:
            old = self.pipeline.background
            self.pipeline.background = pending["background"]
            old.close()
        if "options" in pending:
            self.pipeline.update_options(**pending["options"])
        if "segmenter" in pending:
            self.pipeline.segmenter = pending["segmenter"]
            self.pipeline.reset()
        if "slide" in pending and hasattr(self.pipeline.background, "advance"):
            self.pipeline.background.advance(pending["slide"])
        self.settings = target

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """One frame through the current settings (RGB uint8 in, RGB uint8 out: the same size, or
        twice it with ``upscale``)."""
        if self._pending or self.settings is not self._target:
            self._apply_pending()
        s = self.settings
        if s.effect:
            out = self.pipeline(frame)
            if out.ndim == 2:  # matte view
                out = np.repeat(out[..., None], 3, axis=2)
            elif out.shape[2] == 4:  # pragma: no cover - transparent is refused above
                out = np.ascontiguousarray(out[..., :3])
        else:
            out = frame
        if s.mirror:
            out = np.ascontiguousarray(out[:, ::-1])
        if self.upscaler is not None:
            out = self.upscaler.rgb(out)
        self._frames += 1
        if self._frames % TIMER_RESET_FRAMES == 0:
            self.pipeline.timer.reset()
        return out

    def state(self) -> dict[str, Any]:
        return self.target.to_dict()

    def close(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if "background" in pending:
            pending["background"].close()
        self.pipeline.close()
