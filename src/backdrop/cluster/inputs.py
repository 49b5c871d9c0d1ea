"""Which files a batch reads and where their outputs go, decided on the driver before Ray starts.

Every rule about paths lives here: what counts as an input (media files, never our own temp
files, the manifest or anything inside the output folder), the output name of each input
(suffix fixed when the result has alpha), and the clean-up of temp files a killed worker left
behind. All of it runs before any task, so a bad input spec is a one-line error, not a cluster
job.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from ..io.paths import is_hidden, missing_input
from ..io.image import IMAGE_SUFFIXES
from ..io.video import VIDEO_SUFFIXES
from .chunking import remove_tree
from .manifest import MANIFEST_NAME, WORK_NAME

MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES


def discover_inputs(spec: str, out_dir: Path) -> tuple[Path, list[Path]]:
    """(root, files) for a folder (its media files, not recursive), one file, or a glob.

    A glob may use ``**`` for subfolders (quote it so the shell leaves it alone). Files inside
    the output folder and our own temp files are never inputs.
    """
    p = Path(os.path.expanduser(spec))
    if p.is_dir():
        root, files = p, [f for f in p.iterdir() if f.is_file()]
    elif p.is_file():
        if p.suffix.lower() not in MEDIA_SUFFIXES:
            raise InputError(f"not a video or image file: {p}")
        root, files = p.parent, [p]
    elif glob.has_magic(spec):
        parts = Path(os.path.expanduser(spec)).parts
        fixed = []
        for part in parts:
            if glob.has_magic(part):
                break
            fixed.append(part)
        root = Path(*fixed) if fixed else Path(".")
        files = [Path(x) for x in glob.glob(os.path.expanduser(spec), recursive=True)]
        files = [f for f in files if f.is_file()]
    else:
        raise missing_input(p if p.is_symlink() else spec)
    out_res = Path(out_dir).resolve()
    if root.resolve() == out_res:
        raise OutputError("the output folder is the input folder; choose another one")
    chosen = []
    for f in files:
        if f.suffix.lower() not in MEDIA_SUFFIXES or is_hidden(f.name) or f.name == MANIFEST_NAME:
            continue
        try:
            fr = f.resolve()
        except OSError:
            continue
        if fr == out_res or out_res in fr.parents:
            continue
        chosen.append(f)
    chosen.sort(key=lambda f: str(f))
    if not chosen:
        kinds = "/".join(sorted(s.lstrip(".") for s in MEDIA_SUFFIXES))
        raise InputError(f"no video or image files ({kinds}) in {spec}")
    return root, chosen


def output_pixel_format(background: Any) -> str:
    """``rgb``, ``rgba`` or ``gray`` for a background spec, without loading a model."""
    from ..compose.backgrounds import BackgroundSpec, parse_background

    parse_background(background).close()  # a bad background fails here, before any work
    return BackgroundSpec.parse(background).pixel_format


def output_rel(rel: Path, media: str, pixel_format: str) -> Path:
    """Where an input's output goes, relative to the output folder (suffix fixed for alpha)."""
    suffix = rel.suffix.lower()
    if media == "image":
        if pixel_format == "rgba" and suffix in (".jpg", ".jpeg", ".bmp"):
            return rel.with_suffix(".png")
        return rel
    if pixel_format == "rgba" and suffix not in (".mov", ".webm", ".mkv"):
        return rel.with_suffix(".mov")
    return rel


def _temp_pattern(dst: Path) -> re.Pattern:
    # names tempfile.mkstemp gives atomic_output's temp files for this destination
    return re.compile(rf"^\.{re.escape(dst.stem)}\.[a-z0-9_]{{8}}\.part{re.escape(dst.suffix)}$")


def remove_orphans(out_dir: Path, dsts: list[Path]) -> int:
    """Delete temp files of these outputs (a killed worker's leftovers) and the work folder."""
    removed = 0
    by_dir: dict[Path, list[re.Pattern]] = {}
    for d in dsts:
        by_dir.setdefault(d.parent, []).append(_temp_pattern(d))
    for folder, patterns in by_dir.items():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and any(p.match(name) for p in patterns):
                try:
                    (folder / name).unlink()
                    removed += 1
                except OSError:
                    pass
    remove_tree(Path(out_dir) / WORK_NAME)
    return removed
