"""LiteRT (TensorFlow Lite) backend for ``.tflite`` models, XNNPACK on the CPU.

``ai-edge-litert`` is the maintained successor of ``tflite-runtime``; its interpreter applies
the XNNPACK delegate by default, and ``num_threads`` sets its thread pool.

Creating the interpreter makes the TFLite C++ runtime write
``INFO: Created TensorFlow Lite XNNPACK delegate for CPU.`` straight to file descriptor 2, on
every run, ``--quiet`` or not. Python logging never sees it, and LiteRT has no switch for it:
``TF_CPP_MIN_LOG_LEVEL`` (and the other variables tried) do not reach the TFLite minimal logger
in ai-edge-litert 2.x, and ``tflite::LoggerOptions::SetMinimumLogSeverity`` is not exported by
its shared libraries. So :func:`_native_stderr_filtered` points fd 2 at a temporary file while
the interpreter is built and then writes back everything except the known noise lines, so a
real error the runtime prints in that window still reaches the user.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError, raise_if_stopped
from .base import Segmenter
from .spec import ModelSpec


#: lines the runtime prints on every interpreter creation; anything else is passed through
_NOISE = (
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"INFO: Initialized TensorFlow Lite runtime.",
)
_STDERR_LOCK = threading.Lock()  # fd 2 is process-wide: one redirection at a time


@contextlib.contextmanager
def _native_stderr_filtered(fd: int = 2):
    """Capture what native code writes to ``fd`` (stderr) in this block; re-emit all but noise.

    The captured text is written back when the block ends, also when it raises. Python threads
    that write to stderr meanwhile are captured too and written back (late, but not lost). If
    fd 2 is closed or cannot be duplicated, nothing is redirected.
    """
    with _STDERR_LOCK:
        with contextlib.suppress(Exception):
            sys.stderr.flush()  # what Python already buffered belongs before the window
        saved = None
        try:
            saved = os.dup(fd)
            tmp = tempfile.TemporaryFile()
        except OSError:
            if saved is not None:
                os.close(saved)
            yield
            return
        try:
            os.dup2(tmp.fileno(), fd)
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            try:
                tmp.seek(0)
                _write_all(fd, _without_noise(tmp.read()))
            finally:
                tmp.close()


def _without_noise(data: bytes) -> bytes:
    kept = b"".join(ln for ln in data.splitlines(keepends=True) if ln.rstrip(b"\r\n") not in _NOISE)
    return kept + b"\n" if kept and not kept.endswith(b"\n") else kept


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view):]


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - dependency is declared
        # a Ctrl-C / SIGTERM during the import of the native module surfaces as an ImportError:
        # that is a stop, not a missing package
        raise_if_stopped(exc)
        raise ModelError("ai-edge-litert is not installed: pip install ai-edge-litert") from None
    return Interpreter


def load_interpreter(path: Path, threads: int | None = None):
    """A LiteRT interpreter for ``path`` with its tensors allocated (the runtime's banner
    filtered from stderr); a file it cannot load is a :class:`ModelError`."""
    Interpreter = _interpreter_class()
    threads = threads or min(4, os.cpu_count() or 1)
    try:
        with _native_stderr_filtered():
            it = Interpreter(model_path=str(path), num_threads=int(threads))
            it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise_if_stopped(exc)
        raise ModelError(f"cannot load {path}: {str(exc).splitlines()[0]}") from None
    return it


class LiteRTModel:
    """A ``.tflite`` model with one float32 input and several outputs, read by name (the tensor
    indices differ between files: MediaPipe's person tracker models)."""

    def __init__(self, path: Path, outputs: tuple[str, ...], threads: int | None = None):
        self._it = load_interpreter(path, threads)
        inp = self._it.get_input_details()[0]
        self.input_shape = tuple(int(v) for v in inp["shape"])
        self._in_index = inp["index"]
        by_name = {d["name"]: d["index"] for d in self._it.get_output_details()}
        missing = [n for n in outputs if n not in by_name]
        if missing:
            raise ModelError(f"{path} has no output {', '.join(missing)}: not the model it should be")
        self._out = [by_name[n] for n in outputs]

    def __call__(self, x: np.ndarray) -> tuple[np.ndarray, ...]:
        """The named outputs (in the order given) for the input tensor ``x``."""
        self._it.set_tensor(self._in_index, np.ascontiguousarray(x, np.float32))
        self._it.invoke()
        return tuple(self._it.get_tensor(i) for i in self._out)


class LiteRTSegmenter(Segmenter):
    """Runs a ``.tflite`` segmentation model with the LiteRT interpreter."""

    def __init__(self, path: Path, spec: ModelSpec | None = None, threads: int | None = None):
        threads = threads or min(4, os.cpu_count() or 1)
        self._it = load_interpreter(path, threads)
        inp = self._it.get_input_details()[0]
        out = self._it.get_output_details()[0]
        self._in_index, self._out_index = inp["index"], out["index"]
        shape = [int(v) for v in inp["shape"]]
        if spec is None:
            if len(shape) != 4:
                raise ModelError(f"{path} has an input of shape {shape}; expected a 4-D image tensor")
            layout = "NCHW" if shape[1] == 3 and shape[3] != 3 else "NHWC"
            h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
            spec = ModelSpec(name=Path(path).stem, input_height=h, input_width=w, layout=layout,
                             output_layout=layout)
        if inp["dtype"] != np.float32:
            raise ModelError(f"{path} takes {inp['dtype']} input; only float32 models are supported")
        self.spec = spec
        self.path = Path(path)
        self.threads = int(threads)

    def run(self, x: np.ndarray) -> np.ndarray:
        self._it.set_tensor(self._in_index, x)
        self._it.invoke()
        return self._it.get_tensor(self._out_index)
