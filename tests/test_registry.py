"""Model registry: sha256 verification, offline use of the cache, re-fetch of a corrupt file."""

from __future__ import annotations

import subprocess
import zipfile

import numpy as np
import pytest

from backdrop.errors import ModelError
from backdrop.models import load_model, registry


def _wheel(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture()
def real_bytes(segmenter):
    return {n: registry.cached_path(n).read_bytes() for n in registry.KNOWN_MODELS
            if registry.fetch([n], quiet=True)}


def test_sha256_mismatch_is_detected(tmp_path, monkeypatch, real_bytes):
    members = {km.member: real_bytes[n] for n, km in registry.KNOWN_MODELS.items()}
    members[registry.KNOWN_MODELS["selfie"].member] = real_bytes["selfie"][:-10] + b"0123456789"
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv(registry.WHEEL_ENV, str(_wheel(tmp_path / "mp.whl", members)))
    with pytest.raises(ModelError, match="sha256 mismatch"):
        registry.fetch(["selfie"], quiet=True)
    assert not (tmp_path / "models" / "selfie_segmentation.tflite").exists()


def test_cached_model_is_used_offline(tmp_path, monkeypatch, real_bytes):
    d = tmp_path / "models"
    d.mkdir()
    (d / "selfie_segmentation.tflite").write_bytes(real_bytes["selfie"])
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(d))

    def no_network(*a, **k):
        raise AssertionError("tried to download although the model is cached")

    monkeypatch.setattr(subprocess, "run", no_network)
    seg = load_model("selfie", quiet=True)
    frame = np.zeros((64, 64, 3), np.uint8)
    out = seg(frame)
    assert out.shape == (64, 64) and out.dtype == np.float32


def test_corrupt_cached_model_is_refetched(tmp_path, monkeypatch, real_bytes):
    d = tmp_path / "models"
    d.mkdir()
    (d / "selfie_segmentation.tflite").write_bytes(b"not a model at all")
    members = {km.member: real_bytes[n] for n, km in registry.KNOWN_MODELS.items()}
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(d))
    monkeypatch.setenv(registry.WHEEL_ENV, str(_wheel(tmp_path / "mp.whl", members)))
    assert not registry.is_cached("selfie")
    load_model("selfie", quiet=True)
    assert registry.sha256_of(d / "selfie_segmentation.tflite") == registry.KNOWN_MODELS["selfie"].sha256


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown model"):
        load_model("nonsense-model")
