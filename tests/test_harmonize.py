"""``backdrop eval --harmonize`` (issue 23) on the shared portraits and their true alphas.

- each perturbation changes the person only, by a seeded amount within its stated range;
- the command scores the four methods on real photos: the relight stage restores a dark, noisy
  person better than no correction, leaves unperturbed photos nearly alone, and Reinhard's
  transfer does not (it moves a good photo toward its own room);
- bad input is one line and exit 2;
- the learned estimate's weights file is checked when read.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from backdrop.cli import main
from backdrop.evaluate.harmonize import fmse, harmonize_cases, held_out, reinhard
from backdrop.evaluate.perturb import KINDS, perturb

from conftest import load_pairs, shared_path


@pytest.fixture(scope="module")
def portraits():
    return load_pairs("portraits-soft", limit=4)


def test_each_perturbation_changes_the_person_only_by_a_seeded_amount(portraits):
    name, photo, alpha = portraits[0]
    outside = alpha < 0.002
    for kind in KINDS:
        image, amount = perturb(photo, alpha, name, kind)
        again, same = perturb(photo, alpha, name, kind)
        assert np.array_equal(image, again) and amount == same, kind
        assert np.array_equal(image[outside], photo[outside]), kind  # the room is kept
        assert fmse(image, photo, alpha) > 1, (kind, amount)  # the person is changed
    _, other = perturb(photo, alpha, name, "exposure", seed=1)
    assert other != perturb(photo, alpha, name, "exposure")[1]


def test_the_split_is_stable_and_about_thirty_percent():
    names = [f"photo-{i}" for i in range(1000)]
    share = np.mean([held_out(n) for n in names])
    assert 0.25 < share < 0.35 and held_out("photo-7") == held_out("photo-7")


def test_reinhard_moves_a_good_photo_toward_its_room(portraits):
    changes = [fmse(reinhard(photo, alpha), photo, alpha) for _, photo, alpha in portraits[:2]]
    assert np.mean(changes) > 50, changes


def test_eval_harmonize_scores_every_method_on_real_photos(tmp_path, capsys):
    root = shared_path("portraits-soft")
    rc = main(["eval", "--harmonize", str(root / "images"), str(root / "masks"), "--limit", "2", "--json",
               "--quiet"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    every = data["summary"]["all"]
    assert set(every) == {"none", "colour_match", "reinhard", "relight"}
    assert every["none"]["none"]["fmse"] == 0 and every["none"]["none"]["count"] == 2
    low_none, low_relight = every["none"]["lowlight"]["fmse"], every["relight"]["lowlight"]["fmse"]
    assert low_relight < 0.6 * low_none, (low_none, low_relight)  # a dark, noisy person restored
    assert every["relight"]["none"]["fmse"] < 0.1 * every["none"]["perturbed"]["fmse"]  # a good photo kept
    assert every["reinhard"]["none"]["fmse"] > 5 * every["relight"]["none"]["fmse"] + 1
    assert {r["method"] for r in data["items"]} == set(every) and len(data["items"]) == 2 * 6 * 4


def test_eval_harmonize_user_errors(tmp_path, capsys):
    root = shared_path("portraits-soft")
    assert main(["eval", "--harmonize", str(tmp_path / "missing"), str(root / "masks")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("backdrop: error:") and "\n" not in err
    assert main(["eval", "--harmonize", str(root / "images")]) == 2
    assert "needs the alphas" in capsys.readouterr().err


def test_harmonize_cases_scale_photos_and_skip_empty_people(portraits):
    name, photo, alpha = portraits[0]
    nobody = ("empty", photo, np.zeros_like(alpha))
    cases = list(harmonize_cases([(name, photo, alpha), nobody], kinds=("none", "lowlight")))
    assert [c.kind for c in cases] == ["none", "lowlight"] and max(cases[0].photo.shape[:2]) <= 512


def test_learned_weights_are_checked_when_read(tmp_path):
    from backdrop.compose.relight_learned import LearnedLook
    from backdrop.errors import InputError

    bad = tmp_path / "relight.json"
    bad.write_text('{"features": 3, "mean": [0], "std": [1], "layers": []}')
    with pytest.raises(InputError, match="other features"):
        LearnedLook(bad)
    bad.write_text("not json")
    with pytest.raises(InputError, match="unusable"):
        LearnedLook(bad)
