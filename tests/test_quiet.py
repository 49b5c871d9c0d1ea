"""``--quiet`` is silent: the TFLite runtime's ``INFO: Created TensorFlow Lite XNNPACK delegate
for CPU.`` (written by C++ straight to fd 2 when the interpreter is created) never reaches the
user, while anything else the runtime writes in that window still does."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import shared_path
from media import make_clip

NOISE = "Created TensorFlow Lite XNNPACK delegate"


def run_cli(*args, timeout=180):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "backdrop", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_py(code: str, timeout=180):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    src = shared_path("clips", "talking-room-512x480.mp4")
    return make_clip(src, tmp_path_factory.mktemp("quiet") / "small.mp4", 6, (256, 240))


def test_video_quiet_prints_nothing_at_all(small_clip, tmp_path):
    out = tmp_path / "out.mp4"
    res = run_cli("video", small_clip, out, "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    assert out.stat().st_size > 0


def test_image_quiet_prints_nothing_and_loud_has_no_runtime_info(shared, tmp_path):
    photo = sorted(shared_path("portraits-soft", "images").iterdir())[0]
    res = run_cli("image", photo, tmp_path / "a.png", "--quiet")
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr
    res = run_cli("image", photo, tmp_path / "b.png")
    assert res.returncode == 0, res.stderr
    assert NOISE not in res.stderr  # the line is noise with or without --quiet
    assert (tmp_path / "b.png").stat().st_size > 0


def test_real_runtime_errors_still_reach_stderr():
    """What native code writes to fd 2 while the interpreter is built is passed on, minus the
    known INFO line, also when the block raises; stderr works normally afterwards."""
    res = run_py("""
        import os, sys
        from backdrop.models.litert import _native_stderr_filtered
        print("before", file=sys.stderr)
        with _native_stderr_filtered():
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            os.write(2, b"ERROR: a real runtime error\\n")
        try:
            with _native_stderr_filtered():
                os.write(2, b"ERROR: printed just before a failure")
                raise ValueError("boom")
        except ValueError:
            pass
        print("after", file=sys.stderr)
    """)
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines() == ["before", "ERROR: a real runtime error",
                                       "ERROR: printed just before a failure", "after"]


def test_models_built_in_parallel_threads_are_silent_and_agree(shared):
    """fd 2 is process-wide: concurrent interpreter creations must neither leak the INFO line
    nor break; each model built that way gives the same matte for a real photo."""
    photo = sorted(shared_path("portraits-soft", "images").iterdir())[0]
    res = run_py(f"""
        import sys, threading
        import numpy as np
        from backdrop import load_model
        from backdrop.io.image import read_image
        img = read_image({str(photo)!r})
        models, errors = [], []
        def build():
            try:
                models.append(load_model("selfie", quiet=True, threads=1))
            except Exception as exc:
                errors.append(exc)
        threads = [threading.Thread(target=build) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(models) == 4, errors
        mattes = [m(img) for m in models]
        assert all(np.abs(a - mattes[0]).max() < 1e-5 for a in mattes)
        print(len(models), round(float(mattes[0].mean()), 3))
    """)
    assert res.returncode == 0, res.stderr
    n, mean = res.stdout.split()
    assert n == "4" and 0.05 < float(mean) < 0.95  # a person, not an empty or full matte
    assert res.stderr == "", res.stderr
