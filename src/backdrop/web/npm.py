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
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelError
from ..models.registry import model_dir
from ..models.wheels import fetch_lock

DEFAULT_REGISTRY = "https://registry.npmjs.org"
MAX_TARBALL = 200 * 1024 * 1024
COMPLETE = ".integrity"  # written last inside a cache entry: its presence means "whole"


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

    @property
    def folder(self) -> str:
        return f"{self.name.replace('@', '').replace('/', '__')}-{self.version}"


def web_dir() -> Path:
    """Where fetched browser packages live: ``<model folder>/web``."""
    return model_dir() / "web"


def package_dir(pkg: WebPackage) -> Path:
    return web_dir() / pkg.folder


def is_fetched(pkg: WebPackage) -> bool:
    """True when the cache entry is whole: the marker names this integrity and every file is there."""
    d = package_dir(pkg)
    try:
        if (d / COMPLETE).read_text().strip() != pkg.integrity:
            return False
    except OSError:
        return False
    return all((d / f).is_file() for f in pkg.files)


def registry_url() -> str:
    url = os.environ.get("BACKDROP_NPM_REGISTRY") or os.environ.get("npm_config_registry") or DEFAULT_REGISTRY
    return url.rstrip("/")


def _get(url: str, limit: int, timeout: float = 60.0) -> bytes:
    req = urllib.request.Request(url, headers={"Accept": "application/json, application/octet-stream",
                                               "User-Agent": "backdrop"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - registry only
            data = resp.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise ModelError(f"the npm registry answered {exc.code} for {url}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(f"cannot reach the npm registry ({registry_url()}): {reason}") from None
    if len(data) > limit:
        raise ModelError(f"{url} is larger than {limit // (1024 * 1024)} MB")
    return data


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
    meta_raw = _get(f"{registry_url()}/{name.replace('/', '%2F')}/{pkg.version}", 4 * 1024 * 1024)
    try:
        dist = json.loads(meta_raw)["dist"]
        url, integrity = dist["tarball"], dist.get("integrity", "")
    except (ValueError, KeyError, TypeError):
        raise ModelError(f"the npm registry gave no usable metadata for {pkg.name}@{pkg.version}") from None
    if integrity and integrity != pkg.integrity:
        raise ModelError(f"the registry's integrity for {pkg.name}@{pkg.version} is not the pinned one")
    return url


def extract(data: bytes, pkg: WebPackage, dest: Path) -> None:
    """Write ``pkg.files`` out of the tarball bytes into ``dest`` (no other member, no links)."""
    wanted = {f"package/{f}": f for f in pkg.files}
    found: set[str] = set()
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                rel = wanted.get(member.name)
                if rel is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(src.read() if src else b"")
                found.add(rel)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ModelError(f"the {pkg.name} tarball is damaged: {exc}") from None
    missing = sorted(set(pkg.files) - found)
    if missing:
        raise ModelError(f"{pkg.name}@{pkg.version} has no {missing[0]}")


def fetch_package(pkg: WebPackage, *, quiet: bool = False) -> Path:
    """The package's cache folder, fetched and verified first if it is not there yet."""
    if is_fetched(pkg):
        return package_dir(pkg)
    root = web_dir()
    with fetch_lock(root):
        if is_fetched(pkg):  # another process fetched it while we waited
            return package_dir(pkg)
        if not quiet:
            print(f"fetching {pkg.name}@{pkg.version} ({pkg.licence}) from {registry_url()} "
                  f"into {root}", flush=True)
        data = _get(tarball_url(pkg), MAX_TARBALL, timeout=300.0)
        check_integrity(data, pkg.integrity)
        try:
            tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{pkg.folder}.", suffix=".part"))
        except OSError as exc:
            raise ModelError(f"cannot write the model cache {root}: {exc.strerror}") from None
        try:
            os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide the cache from other users
            extract(data, pkg, tmp)
            (tmp / COMPLETE).write_text(pkg.integrity + "\n")
            final = package_dir(pkg)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return package_dir(pkg)


def fetch_all(packages, *, quiet: bool = False) -> list[Path]:
    return [fetch_package(p, quiet=quiet) for p in packages]
