"""``backdrop.stats``: the shared summaries, on hand-made values whose answers are known."""

from collections import deque

import numpy as np
import pytest

from backdrop.stats import current_rss_mb, peak_rss_mb, percentile, recent_fps, rss_mb, stats_ms, summary_ms
from backdrop.timing import StageTimer


def test_summary_of_known_values():
    s = summary_ms([4.0, 1.0, 3.0, 2.0, 10.0])
    assert s == {"min": 1.0, "median": 3.0, "p95": pytest.approx(8.8), "mean": 4.0, "n": 5}
    # p95 by linear interpolation: rank 0.95 * 4 = 3.8 between 4.0 and 10.0 -> 4 + 0.8 * 6
    assert s["p95"] == pytest.approx(4.0 + 0.8 * 6.0)


def test_summary_of_nothing_is_zeros():
    assert summary_ms([]) == {"min": 0.0, "median": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    assert stats_ms([]) == {"min": 0.0, "median": 0.0, "p95": 0.0, "mean": 0.0, "n": 0, "per_frame": 0.0}


def test_per_frame_share_of_a_stage_that_skips_frames():
    # 3 calls of 2, 4 and 6 ms over 12 frames: 12 ms in all, 1 ms a frame; over its own calls, the mean
    assert stats_ms([2.0, 4.0, 6.0], frames=12)["per_frame"] == pytest.approx(1.0)
    assert stats_ms([2.0, 4.0, 6.0])["per_frame"] == pytest.approx(4.0)
    assert stats_ms(np.array([2.0, 4.0, 6.0]), frames=12)["median"] == 4.0


def test_percentile_rounds_and_knows_empty():
    assert percentile([10.0, 20.0, 30.0, 40.0], 50) == pytest.approx(25.0)
    assert percentile(deque([1.0, 2.0]), 95, ndigits=2) == 1.95
    assert percentile([1.0, 2.0, 3.0], 100 / 3, ndigits=1) == 1.7
    assert percentile([], 50) is None


def test_recent_fps_counts_only_the_window():
    # 30 frames/s for 5 s: only the last 2 s count, 60 intervals of 1/30 s
    times = [i / 30 for i in range(151)]
    assert recent_fps(times, window=2.0) == pytest.approx(30.0)
    # a stall long ago does not matter; a faster recent second does
    times = [0.0, 10.0] + [10.0 + i / 60 for i in range(1, 61)]
    assert recent_fps(times, window=1.0) == pytest.approx(60.0)
    assert recent_fps(times, window=100.0) == pytest.approx(61 / 11.0)


def test_recent_fps_needs_three_stamps_over_some_time():
    assert recent_fps([]) == 0.0
    assert recent_fps([1.0, 1.5]) == 0.0
    assert recent_fps([1.0, 1.0, 1.0]) == 0.0
    assert recent_fps([1.0, 1.5, 2.0]) == pytest.approx(2.0)


def test_stage_timer_summary_uses_the_same_numbers():
    timer = StageTimer()
    for ms in (5.0, 1.0, 3.0):
        timer.add("inference", ms)
    assert timer.summary() == {"inference": summary_ms([5.0, 1.0, 3.0])}
    assert timer.summary()["inference"]["median"] == 3.0


def test_rss_readers_agree_and_peak_is_not_below_current():
    cur, peak = rss_mb()
    if cur is None or peak is None:
        pytest.skip("no way to read this process's memory here")
    assert 1.0 < cur < 1e6
    assert peak >= cur * 0.99
    import mmap

    grown = mmap.mmap(-1, 64 * 2**20)  # 64 MB of fresh pages (freed heap could be reused), touched
    before = current_rss_mb()
    grown.write(b"x" * (64 * 2**20))
    assert current_rss_mb() > before + 32
    assert peak_rss_mb() >= current_rss_mb() * 0.99
    grown.close()
