"""The stage data contract (``StageSpec.reads``/``writes``, ``engine/contract.py``) and the two
worked examples of docs/engine.md, each done on a copy of the package: a stage that writes a new
``FrameState`` field which another stage reads, and a new background kind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backdrop import Pipeline
from backdrop.engine import contract
from backdrop.engine.contract import ContractError, check_contract
from backdrop.engine.state import FIELDS
from backdrop.stages import STAGES
from backdrop.stages.base import Stage, StageSpec

from conftest import shared_path

SRC = Path(__file__).resolve().parents[1] / "src"


def reader(reads, phase="compose", name="reader"):
    return StageSpec(name=name, phase=phase, summary="test", make=Stage, reads=tuple(reads), enabled=lambda o: True)


def test_every_declared_name_is_a_field_and_the_shipped_pipelines_pass():
    for spec in STAGES:
        for name in (*spec.reads, *spec.writes, *spec.optional):
            assert name in FIELDS, (spec.name, name)
    check_contract(STAGES)  # every stage on at once (key and plate included) is consistent
    Pipeline(background="#00ff00", key="green", touch_up=0.5, light_wrap=0.5, colour_match=0.5)


def test_a_read_nothing_writes_fails_at_build_with_one_line(monkeypatch, segmenter):
    with pytest.raises(ContractError) as err:
        check_contract([*STAGES, reader(["no_such_field"])])
    assert "reader" in str(err.value) and "no_such_field" in str(err.value) and "\n" not in str(err.value)
    # despill may use the key's colour, but a stage that needs it while the key is off cannot run
    with pytest.raises(ContractError, match=r"reads key_colour, which only key writes, and that is off"):
        check_contract([s for s in STAGES if s.name != "key"] + [reader(["key_colour"])])
    # a full-size matte needed before anything made it
    with pytest.raises(ContractError, match=r"stage early reads matte, which .*after it"):
        check_contract([reader(["matte"], phase="network", name="early"), *STAGES])
    # the same through Pipeline: before the first frame, with one line naming both
    import backdrop.engine.pipeline as pipeline_module

    monkeypatch.setattr(pipeline_module, "STAGES", [*STAGES, reader(["plate_fits"])])
    with pytest.raises(ContractError) as err:
        Pipeline(background="#00ff00", segmenter=segmenter)
    assert str(err.value) == "stage reader reads plate_fits, which only plate writes, and that is off"
    assert contract.ContractError.__mro__[1].__name__ == "BackdropError"  # the CLI prints it as one line


def test_the_fused_pass_is_read_off_the_declaration(segmenter):
    """No flag to forget: refine's guided mode joins the fused pass, its closed-form mode, any
    compose stage that reads the full-size matte do not; relight (it looks at the new background
    before the blend) joins on the frames where it declares itself idle (``Stage.idle``)."""
    assert Pipeline(background="#00ff00", segmenter=segmenter).fuses  # relight is on by default
    assert Pipeline(background="#00ff00", relight=0.0, segmenter=segmenter).fuses
    assert not Pipeline(background="#00ff00", relight=0.0, refine="high", segmenter=segmenter).fuses
    assert not Pipeline(background="#00ff00", relight=0.0, touch_up=0.5, segmenter=segmenter).fuses
    assert Pipeline(background="#00ff00", relight=0.0, despill=0.5, segmenter=segmenter).fuses


# -- docs/engine.md, worked example 1: a new field, written by one stage and read by another --------
PERSON_BOX_STAGE = '''
"""Example: the person's box at the frame's size, for presenter placement and auto-framing."""

import numpy as np

from .base import Opt, Stage, StageSpec


class PersonBox(Stage):
    def work(self, fs):
        ys, xs = np.nonzero(fs.work_matte > 0.5)
        if xs.size == 0:
            return  # nobody: person_box stays None
        sx, sy = fs.size[0] / fs.work_matte.shape[1], fs.size[1] / fs.work_matte.shape[0]
        fs.person_box = (int(xs.min() * sx), int(ys.min() * sy), int((xs.max() + 1) * sx), int((ys.max() + 1) * sy))


STAGE = StageSpec(
    name="person_box", phase="work", make=PersonBox, summary="the person's box, for framing",
    reads=("work_matte", "size"), writes=("person_box",), on_skipped=True,
    options=[Opt("person_box", False, "find the person's box", raw=False)],
)
'''
BOX_OUTLINE_STAGE = '''
"""Example: draw the person's box on the output (a framing aid)."""

import cv2

from .base import Opt, Stage, StageSpec


class BoxOutline(Stage):
    def finish(self, fs, out, background):
        if fs.person_box is None:
            return out
        x0, y0, x1, y1 = fs.person_box
        return cv2.rectangle(out.copy(), (x0, y0), (x1 - 1, y1 - 1), (255, 255, 0), 3)


STAGE = StageSpec(
    name="box_outline", phase="compose", make=BoxOutline, summary="the person's box drawn on the output",
    reads=("person_box",),
    options=[Opt("box_outline", False, "draw the person's box", raw=False)],
)
'''
CHECKER_KIND = '''
"""Example background kind: a checkerboard, ``checker`` or ``checker:SIZE`` (pixels a square)."""

import numpy as np

from ...errors import BackgroundError
from .base import Background, BackgroundKind


class CheckerBackground(Background):
    def __init__(self, size: int):
        self.size = size

    def render(self, index, frame, alpha, working=None):
        h, w = frame.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w]
        on = ((xs // self.size + ys // self.size) % 2).astype(bool)
        out = np.full((h, w, 3), 40, np.uint8)
        out[on] = 215
        return out


def parse(text):
    head, _, size = text.partition(":")
    if head.lower() != "checker":
        return None
    try:
        value = int(size or 32)
    except ValueError:
        raise BackgroundError(f"checker size must be a whole number, got {size!r}") from None
    if not 2 <= value <= 512:
        raise BackgroundError(f"checker size must be in 2..512, got {value}")
    return {"size": value}


KIND = BackgroundKind(
    name="checker", help="checker[:SIZE]", parse=parse, format=lambda p: f"checker:{p['size']}",
    build=lambda p: CheckerBackground(p["size"]),
)
'''


def package_copy(tmp_path: Path) -> Path:
    pkg = tmp_path / "backdrop"
    shutil.copytree(SRC / "backdrop", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    return pkg


def run_in(tmp_path: Path, script: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin",
           **{k: v for k, v in os.environ.items() if k.startswith("BACKDROP")}}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def test_worked_example_a_stage_writes_a_new_field_another_reads_it(tmp_path, shared):
    pkg = package_copy(tmp_path)
    (pkg / "stages" / "person_box.py").write_text(PERSON_BOX_STAGE)
    (pkg / "stages" / "box_outline.py").write_text(BOX_OUTLINE_STAGE)
    edit(pkg / "engine" / "state.py", "    plate_fits: bool | None = None",
         "    plate_fits: bool | None = None\n    person_box: tuple[int, int, int, int] | None = None  # the person's box")
    init = pkg / "stages" / "__init__.py"
    edit(init, "from .base import", "from . import box_outline, person_box\nfrom .base import")
    edit(init, "    temporal.STAGE,", "    temporal.STAGE,\n    person_box.STAGE,")
    edit(init, "    light_wrap.STAGE,", "    light_wrap.STAGE,\n    box_outline.STAGE,")
    images = shared_path("portraits-soft", "images")
    res = run_in(tmp_path, f"""
        import os
        import numpy as np
        from backdrop import Pipeline
        from backdrop.engine.contract import ContractError
        from backdrop.io.image import read_image
        frame = read_image(os.path.join({str(images)!r}, sorted(os.listdir({str(images)!r}))[0]))
        pipe = Pipeline(background="#000000", person_box=True, box_outline=True, quiet=True)
        out = pipe(frame)
        cyan = (out[..., 0] > 240) & (out[..., 1] > 240) & (out[..., 2] < 15)
        ys, xs = np.nonzero(cyan)
        assert xs.size > 500, xs.size  # the outline is drawn around the person...
        h, w = frame.shape[:2]
        assert xs.max() - xs.min() > w // 3 and ys.max() - ys.min() > h // 3  # ...a person-sized box
        try:
            Pipeline(background="#000000", box_outline=True, quiet=True)  # the box's writer is off
        except ContractError as exc:
            print(exc)
        else:
            raise SystemExit("no contract error")
    """)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip() == "stage box_outline reads person_box, which only person_box writes, and that is off"


def test_worked_example_a_new_background_kind(tmp_path, shared):
    pkg = package_copy(tmp_path)
    (pkg / "compose" / "backgrounds" / "checker.py").write_text(CHECKER_KIND)
    init = pkg / "compose" / "backgrounds" / "__init__.py"
    edit(init, "from . import blur,", "from . import checker\nfrom . import blur,")
    edit(init, "    colour.KIND,", "    checker.KIND,\n    colour.KIND,")
    images = shared_path("portraits-soft", "images")
    res = run_in(tmp_path, f"""
        import os
        import numpy as np
        from backdrop import Pipeline
        from backdrop.compose.backgrounds import BackgroundSpec, grammar
        from backdrop.errors import BackgroundError
        from backdrop.io.image import read_image
        spec = BackgroundSpec.parse("checker:16")
        assert spec.kind == "checker" and BackgroundSpec.parse(spec.format()) == spec
        assert "checker[:SIZE]" in grammar()
        try:
            BackgroundSpec.parse("nonsense-background")
        except BackgroundError as exc:
            assert "checker[:SIZE]" in str(exc), exc  # the kinds listed in errors come from the registry
        frame = read_image(os.path.join({str(images)!r}, sorted(os.listdir({str(images)!r}))[0]))
        out = Pipeline(background="checker:16", quiet=True)(frame)
        corner = out[:32, :32, 0].astype(int)
        assert set(np.unique(corner)) <= {{40, 215}} and (corner == 215).mean() == 0.5
        print("ok")
    """)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
    helped = subprocess.run([sys.executable, "-m", "backdrop", "video", "--help"], capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert "checker[:SIZE]" in " ".join(helped.stdout.split())
