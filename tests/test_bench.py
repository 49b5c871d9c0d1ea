"""``backdrop bench``: functional checks only. No timing assertions: numbers must exist, be
positive and be consistent with each other (the ratio is computed from the two rates), and both
file-to-file runs must keep the frame count."""

from __future__ import annotations

import json
import math

import pytest

from backdrop.bench import (BenchConfig, bare_transcode, machine_info, make_clip, parse_size, parse_sizes,
                            run_bench, update_markdown_section)
from backdrop.cli import main
from backdrop.errors import InputError, OptionError
from backdrop.io.video import probe
from backdrop.engine import PipelineOptions

from conftest import shared_path

PIPELINE_STAGES = {"decode", "inference", "postprocess", "composite", "encode"}


def _check_stats(s: dict) -> None:
    assert s["n"] >= 1
    for key in ("min", "median", "p95", "mean", "per_frame"):
        assert math.isfinite(s[key]) and s[key] > 0, (key, s)
    assert s["min"] <= s["median"] <= s["p95"] + 1e-9


@pytest.fixture(scope="module")
def cli_result():
    """One small generated run through the real command line, with every measurement on."""
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--sizes", "320x180", "--frames", "8", "--json", "--quiet"])
    assert rc == 0
    return json.loads(buf.getvalue())


def test_cli_json_has_every_stage_and_sane_numbers(cli_result):
    r = cli_result
    assert r["machine"]["usable_cpus"] >= 1 and r["machine"]["python"]
    assert r["config"]["model"] == "selfie" and r["config"]["background"] == "blur"
    (run,) = r["runs"]
    assert run["name"] == "320x180" and (run["width"], run["height"]) == (320, 180)
    assert run["frames"] == 8
    assert PIPELINE_STAGES <= set(run["stages"])
    assert list(run["stages"])[0] == "decode" and list(run["stages"])[-1] == "encode"
    for stage in run["stages"].values():
        _check_stats(stage)
    assert run["stages"]["encode"]["n"] == 8 and run["stages"]["decode"]["n"] == 8


def test_cli_e2e_and_bare_transcode_keep_the_frame_count_and_give_the_ratio(cli_result):
    run = cli_result["runs"][0]
    assert run["e2e"]["frames"] == run["transcode"]["frames"] == run["frames"] == 8
    assert run["e2e"]["fps"] > 0 and run["transcode"]["fps"] > 0
    assert run["ratio"] == pytest.approx(run["e2e"]["fps"] / run["transcode"]["fps"])
    assert run["e2e"]["ms_per_frame"] == pytest.approx(1000.0 / run["e2e"]["fps"])
    assert 0.0 <= run["skipped_fraction"] <= 1.0


def test_cli_live_latency_and_memory(cli_result):
    run = cli_result["runs"][0]
    live = run["live"]
    assert live["frames"] == 8 and 0 < live["min_ms"] <= live["p50_ms"] <= live["p95_ms"]
    mem = run["memory"]
    assert mem["frames"] == 8
    assert mem["peak_mb"] > 10 and mem["peak_mb"] >= mem["baseline_mb"] > 0


def test_clip_with_audio_cut_to_frames(shared, tmp_path):
    """A real clip with audio, cut to its first frames; stages from the pipeline alone (no e2e)."""
    clip = shared_path("clips", "talking-room-512x480.mp4")
    r = run_bench(BenchConfig(clip=clip, frames=6, e2e=False, live=False, memory=False))
    (run,) = r["runs"]
    assert run["has_audio"] and run["frames"] == 6 and (run["width"], run["height"]) == (512, 480)
    assert {"decode", "inference", "postprocess", "composite"} <= set(run["stages"])
    assert "encode" not in run["stages"] and "e2e" not in run
    for stage in run["stages"].values():
        _check_stats(stage)


def test_make_clip_and_bare_transcode_keep_frames_and_audio(shared, tmp_path):
    src = shared_path("clips", "talking-room-512x480.mp4")
    made = make_clip(src, tmp_path / "src.mp4", (320, 180), 10)
    assert made == {"frames": 10, "width": 320, "height": 180, "has_audio": True}
    p = probe(tmp_path / "src.mp4")
    assert (p["frames"], p["width"], p["height"], p["has_audio"]) == (10, 320, 180, True)
    stats = bare_transcode(tmp_path / "src.mp4", tmp_path / "bare.mp4", crf=30, preset="ultrafast")
    assert stats["frames"] == 10 and stats["fps"] > 0
    q = probe(tmp_path / "bare.mp4")
    assert (q["frames"], q["has_audio"], q["audio_codec"]) == (10, True, "aac")
    assert q["duration"] == pytest.approx(p["duration"], abs=0.05)


def test_make_clip_from_the_bundled_sample(tmp_path):
    made = make_clip(None, tmp_path / "s.mp4", (160, 120), 5)
    assert made == {"frames": 5, "width": 160, "height": 120, "has_audio": False}
    assert probe(tmp_path / "s.mp4")["frames"] == 5


def test_sizes_parse():
    assert parse_size("720p") == ("720p", (1280, 720))
    assert parse_size("4K") == ("4K", (3840, 2160))
    assert parse_size("640x360") == ("640x360", (640, 360))
    assert [s for s, _ in parse_sizes("480p, 1080p")] == ["480p", "1080p"]
    for bad in ("999p", "17x10", "8x8", "wide"):
        with pytest.raises(OptionError):
            parse_size(bad)


def test_user_errors_are_one_line(tmp_path, capsys):
    with pytest.raises(InputError):
        BenchConfig(clip=tmp_path / "missing.mp4").validate()
    with pytest.raises(OptionError):
        BenchConfig(frames=0).validate()
    assert main(["bench", str(tmp_path / "missing.mp4"), "--json"]) == 2
    assert main(["bench", "--sizes", "720q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("backdrop: error: ") for line in err)


def test_raw_options_reach_the_bench():
    cfg = BenchConfig(options=PipelineOptions.raw())
    assert cfg.validate().options == PipelineOptions.raw()


def test_markdown_section_is_replaced_and_the_rest_kept(tmp_path):
    doc = tmp_path / "benchmarks.md"
    update_markdown_section(doc, "speed", "first")
    doc.write_text(doc.read_text() + "\nhand-written note\n")
    update_markdown_section(doc, "quality", "q")
    update_markdown_section(doc, "speed", "second")
    text = doc.read_text()
    assert text.startswith("# Benchmarks")
    assert "second" in text and "first" not in text and "hand-written note" in text and "\nq\n" in text
    assert text.count("<!-- BEGIN speed -->") == 1


def test_machine_info_names_the_versions():
    m = machine_info()
    for key in ("cpu", "logical_cpus", "ram_gb", "python", "numpy", "onnxruntime", "ai-edge-litert", "av"):
        assert key in m
    assert m["numpy"] and m["av"]
