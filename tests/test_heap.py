"""heap.py: frame-sized buffers stay in the process (glibc), counted in page faults, not seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from backdrop import heap

# each child: 40 frames of the serve pipeline's usual arithmetic on 512x480 float32 arrays (a
# fresh result array per operation, as the stages make them), and the minor page faults they took
PROBE = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    if sys.argv[1] == "keep":
        from backdrop.heap import keep_frame_buffers
        assert keep_frame_buffers()
    a = np.random.default_rng(0).random((480, 512), dtype=np.float32)
    b = a * 0.5

    def frame():
        c = (a - b) * a + b
        d = np.clip(c, 0.1, 0.9)
        return np.dstack([d, d, d]) * 2.0

    for _ in range(3):  # the first frames may grow the heap
        frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        frame()
    print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
""")

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or not heap._glibc(), reason="glibc malloc only")


def _faults(mode: str, **env: str) -> int:
    environ = {k: v for k, v in os.environ.items() if k not in heap.USER_SETTINGS and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={**environ, **env})
    return json.loads(out.stdout)["faults"]


@glibc_only
def test_frame_buffers_stop_faulting_in_again():
    # a 512x480 float32 array is 240 pages; without the tuning the HxWx3 ones (2.9 MB) are mapped
    # and unmapped every time: thousands of faults over 40 frames; with it, the heap reuses them
    plain, kept = _faults("plain"), _faults("keep")
    assert plain > 40 * 240, plain
    assert kept < plain / 20, (kept, plain)


@glibc_only
def test_a_users_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")  # not a threshold: still tuned
    assert not heap._user_tuned()
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert not heap.keep_frame_buffers()
    monkeypatch.delenv("GLIBC_TUNABLES")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    assert not heap.keep_frame_buffers()
