"""The stage contract every declared stage inherits, and adding a stage as one file + one line.

Each stage in ``stages.STAGES`` must be off under ``raw()``; flipping its options must switch on or
off no other stage that has options of its own, must change the output on real frames, and must
leave every other stage running; its options must appear as CLI flags (where they do something),
as live settings keys when declared live, and its name in bench's stage order.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from backdrop import Pipeline, PipelineOptions
from backdrop.cli import build_parser
from backdrop.engine.options import LIVE_OPTIONS, timer_order
from backdrop.live.settings import SETTING_KEYS, LiveSettings, apply_changes
from backdrop.stages import STAGES
from backdrop.stages.base import UNCHANGED

from conftest import load_pairs, shared_path

SRC = Path(__file__).resolve().parents[1] / "src"


FREE_FORM = {"key": "green"}  # options with a free-form value: a value that turns them on


def on_value(opt):
    """A value that turns the option's stage on."""
    if opt.validator is not None:
        return FREE_FORM[opt.name]
    if opt.value_type is bool:
        return True
    if opt.choices:
        return next(c for c in opt.choices if c != opt.raw)
    return opt.default if opt.default else 0.5


def stage_options(spec, on: bool):
    """Default options with this stage on (its defaults, or sample on values where it is off by
    default), or with its options at their raw values."""
    base = PipelineOptions(quiet=True)
    values = {}
    for o in spec.options:
        if on:
            values[o.name] = getattr(base, o.name) if spec.enabled(base) else on_value(o)
        elif o.raw is not UNCHANGED:
            values[o.name] = o.raw
    return replace(base, **values)


def subcommand(name):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {o for a in sub.choices[name]._actions for o in a.option_strings}


@pytest.fixture(scope="module")
def frames(shared, tmp_path_factory):
    """A small person (a real photo, scaled down) walking over a real background: every stage,
    ROI included, has something to do."""
    from backdrop.compose.backgrounds import cover_resize
    from backdrop.io.image import read_image

    room = cover_resize(read_image(shared_path("backgrounds", "porch-691330_1280.jpg")), 960, 540)
    room = (0.5 * room + 0.5 * np.float32([20, 160, 80])).astype(np.uint8)  # a green-painted room: despill acts
    plate = tmp_path_factory.mktemp("plate") / "empty-room.png"
    cv2.imwrite(str(plate), cv2.cvtColor(room, cv2.COLOR_RGB2BGR))
    FREE_FORM["plate"] = str(plate)  # the scene without the person: its true clean plate
    name, person, alpha = load_pairs("portraits-soft", 1)[0]
    h = 260
    w = round(person.shape[1] * h / person.shape[0])
    person = cv2.resize(person, (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(alpha.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)[..., None]
    tiny_h = 70  # a poster of the same person beside them: a stray blob that cleanup drops
    tiny_w = round(person.shape[1] * tiny_h / person.shape[0])
    tiny = cv2.resize(person, (tiny_w, tiny_h), interpolation=cv2.INTER_AREA).astype(np.float32)
    tiny_a = cv2.resize(alpha[..., 0], (tiny_w, tiny_h), interpolation=cv2.INTER_AREA)[..., None]
    spot = room[300:300 + tiny_h, 560:560 + tiny_w].astype(np.float32)
    room[300:300 + tiny_h, 560:560 + tiny_w] = (tiny_a * tiny + (1 - tiny_a) * spot).astype(np.uint8)
    out = []
    noise = np.random.default_rng(0)
    for i in range(12):
        frame = room.copy()
        x0 = 300 + 6 * min(i, 6)  # walks, then stands still (sensor noise only)
        patch = frame[540 - h:, x0:x0 + w].astype(np.float32)
        frame[540 - h:, x0:x0 + w] = (alpha * person + (1 - alpha) * patch).astype(np.uint8)
        out.append(np.clip(frame + noise.normal(0, 1.5, frame.shape), 0, 255).astype(np.uint8))
    return out


def run(options, frames, segmenter):
    pipe = Pipeline(background="#2040ff", options=options, segmenter=segmenter)
    outs = [out for _, _, out in pipe.stream(frames)]
    return np.stack(outs), set(pipe.timer.samples)


def test_every_stage_is_off_under_raw_and_named_in_the_bench_order():
    raw = PipelineOptions.raw()
    assert raw.all_stages_off and not PipelineOptions().all_stages_off
    order = timer_order()
    for spec in STAGES:
        assert not spec.enabled(raw), f"{spec.name} still runs under raw()"
        assert spec.name in order


@pytest.mark.parametrize("spec", [s for s in STAGES if s.options], ids=lambda s: s.name)
def test_stage_contract(spec, frames, segmenter):
    on, off = stage_options(spec, True), stage_options(spec, False)
    assert spec.enabled(on) and not spec.enabled(off)
    # flipping this stage switches no other stage that has options of its own
    others = {s.name for s in STAGES if s is not spec and s.enabled(on) != s.enabled(off)}
    assert all(not s.options for s in STAGES if s.name in others), others
    if spec.name == "relight":  # it leaves a well-exposed person alone: the same room, dim and noisy
        from backdrop.evaluate.perturb import perturb_person

        rng = np.random.default_rng(1)
        frames = [perturb_person(f, "lowlight", -2.0, rng, noise=3.0) for f in frames]
    out_on, timers_on = run(on, frames, segmenter)
    out_off, timers_off = run(off, frames, segmenter)
    assert np.abs(out_on.astype(int) - out_off).max() > 0, f"{spec.name} changed nothing"
    stage_names = {s.name for s in STAGES}
    assert (timers_on - timers_off) & stage_names <= {spec.name} | others  # the rest still ran
    assert (timers_off - timers_on) & stage_names == set()
    # its flags: on `video`; on `image` unless it only matters across frames; never compose on `eval`
    video, image, evaluate = subcommand("video"), subcommand("image"), subcommand("eval")
    for opt in spec.options:
        assert opt.cli_flag in video
        assert (opt.cli_flag in image) == (not opt.video_only)
        assert (opt.cli_flag in evaluate) == (spec.phase != "compose")
        if opt.live:
            assert opt.name in SETTING_KEYS and opt.name in LIVE_OPTIONS
            changed = apply_changes(LiveSettings(), {opt.name: on_value(opt)})
            assert dict(changed.tuning)[opt.name] == opt.check(on_value(opt))


def test_live_option_change_reaches_the_running_pipeline(frames, segmenter):
    from backdrop.live import LiveProcessor

    proc = LiveProcessor(LiveSettings(background="#2040ff"), options=PipelineOptions(quiet=True),
                         pipeline=Pipeline(background="#2040ff", segmenter=segmenter, live=True))
    proc(frames[0])
    proc.update({"light_wrap": 0.8, "temporal": 0.5})
    proc(frames[1])
    assert proc.pipeline.options.light_wrap == 0.8 and proc.pipeline.options.temporal == 0.5
    assert "light_wrap" in {s.spec.name for s in proc.pipeline.stages}
    assert proc.state()["light_wrap"] == 0.8


EXAMPLE_STAGE = '''
"""Example stage: a grey background behind a coloured person (one file + one line in STAGES)."""

import cv2

from ..compose.composite import blend
from .base import Opt, Stage, StageSpec


class GreyBackground(Stage):
    def finish(self, fs, out, background):
        grey = cv2.cvtColor(cv2.cvtColor(background, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        k = self.options.grey_background
        return blend(fs.fg, cv2.addWeighted(grey, k, background, 1 - k, 0), fs.matte)


STAGE = StageSpec(
    name="grey_background", phase="compose", make=GreyBackground, summary="a grey world behind you",
    reads=("fg", "matte"),
    options=[Opt("grey_background", 0.0, "grey the new background, 0..1", low=0, high=1, raw=0.0, live=True)],
    enabled=lambda o: o.grey_background > 0,
)
'''


def test_adding_a_stage_is_one_file_and_one_line(tmp_path, shared):
    """Copy the package, add the example stage file and one line in STAGES, and see it in the
    options, the flags, --raw, the live keys, the bench order and the pixels."""
    pkg = tmp_path / "backdrop"
    shutil.copytree(SRC / "backdrop", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "stages" / "grey_background.py").write_text(EXAMPLE_STAGE)
    init = pkg / "stages" / "__init__.py"
    text = init.read_text()
    text = text.replace("from .base import", "from . import grey_background\nfrom .base import", 1)
    text = text.replace("    light_wrap.STAGE,", "    light_wrap.STAGE,\n    grey_background.STAGE,", 1)
    init.write_text(text)
    script = textwrap.dedent(f"""
        import numpy as np
        from backdrop import Pipeline, PipelineOptions
        from backdrop.engine.options import timer_order
        from backdrop.live.settings import SETTING_KEYS
        from backdrop.io.image import read_image
        assert PipelineOptions().grey_background == 0.0 and PipelineOptions.raw().grey_background == 0.0
        assert "grey_background" in SETTING_KEYS and "grey_background" in timer_order()
        frame = read_image({str(shared_path("portraits-soft", "images"))!r} + "/" +
                           sorted(__import__("os").listdir({str(shared_path("portraits-soft", "images"))!r}))[0])
        plain = Pipeline(background="#ff0000", quiet=True)(frame)
        grey = Pipeline(background="#ff0000", grey_background=1.0, quiet=True)
        out = grey(frame)
        red = (plain[..., 0] > 250) & (plain[..., 1] < 5)  # the new background, where no person is
        assert red.mean() > 0.2
        assert np.abs(out[red][:, 0].astype(int) - out[red][:, 1]).max() < 3  # ... went grey
        assert "grey_background" in {{s.spec.name for s in grey.stages}}
        print("ok")
    """)
    env_path = f"{tmp_path}"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin",
                              **{k: v for k, v in __import__("os").environ.items() if k.startswith("BACKDROP")}})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
    flags = subprocess.run([sys.executable, "-m", "backdrop", "video", "--help"], capture_output=True, text=True,
                           env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert "--grey-background" in flags.stdout
