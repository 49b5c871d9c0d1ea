"""Each training loss and the model's size, as small constructed cases (needs the [train] extra)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from backdrop.train import TrainError  # noqa: E402
from backdrop.train import losses as L  # noqa: E402
from backdrop.train.model import build_model, count_flops, count_params  # noqa: E402


def square(n=32, a=8, b=24):
    t = torch.zeros(1, 1, n, n)
    t[..., a:b, a:b] = 1
    return t


def logits_for(p, margin=8.0):
    return (2 * p - 1) * margin


def test_bce_dice_small_when_right_large_when_wrong():
    t = square()
    assert L.bce_dice(logits_for(t), t) < 0.01
    assert L.bce_dice(logits_for(1 - t), t) > 5
    assert 0.0 <= float(L.dice_loss(torch.zeros_like(t), t)) <= 1.0


def test_lovasz_is_zero_beyond_margin_and_decreases_with_errors():
    t = square()
    assert float(L.lovasz_hinge(logits_for(t, 2.0), t)) == pytest.approx(0.0, abs=1e-6)
    half = logits_for(t, 2.0).clone()
    half[..., 8:16, 8:24] = -2.0  # half the person missed
    assert float(L.lovasz_hinge(half, t)) > float(L.lovasz_hinge(logits_for(t, 2.0), t))
    x = torch.zeros_like(t, requires_grad=True)
    L.lovasz_hinge(x, t).backward()
    assert (x.grad[t > 0.5] < 0).all() and (x.grad[t < 0.5] >= 0).all()  # pushes towards the label


def test_boundary_band_is_dilation_minus_erosion():
    t = square(32, 8, 24)  # 16x16 square
    band = L.boundary_band(t, width=2)
    # dilated 20x20 minus eroded 12x12
    assert int(band.sum()) == 20 * 20 - 12 * 12
    assert float(L.boundary_band(torch.zeros(1, 1, 16, 16), 3).sum()) == 0.0


def test_boundary_loss_only_sees_the_band():
    t = square()
    good = logits_for(t)
    far_wrong = good.clone()
    far_wrong[..., 0:2, 0:2] = 8.0  # an error far from the edge
    assert float(L.boundary_loss(far_wrong, t, 3)) == pytest.approx(float(L.boundary_loss(good, t, 3)))
    edge_wrong = good.clone()
    edge_wrong[..., 8, 8:24] = -8.0  # the top row of the person missed
    assert float(L.boundary_loss(edge_wrong, t, 3)) > float(L.boundary_loss(good, t, 3)) + 0.1
    assert float(L.boundary_loss(good, torch.zeros_like(t), 3)) == 0.0  # no edge: no loss


def test_ohem_averages_the_hardest_pixels():
    t = square()
    x = logits_for(t)
    x[..., 0, 0] = 8.0  # one very wrong pixel
    full = float(L.bce(x, t))
    hard = float(L.ohem_bce(x, t, keep=1 / t.numel()))
    assert hard > 8 and hard > 50 * full
    assert float(L.ohem_bce(x, t, keep=1.0)) == pytest.approx(full, rel=1e-5)


def test_consistency_kl_zero_for_equal_positive_and_symmetric():
    a = torch.randn(2, 1, 8, 8)
    b = torch.randn(2, 1, 8, 8)
    assert float(L.consistency_kl(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.consistency_kl(a, b)) > 0
    assert float(L.consistency_kl(a, b)) == pytest.approx(float(L.consistency_kl(b, a)), rel=1e-5)


def test_distillation_pulls_towards_the_teacher():
    teacher = torch.rand(1, 1, 8, 8)
    exact = torch.logit(teacher)
    assert float(L.distillation(exact, teacher)) == pytest.approx(0.0, abs=1e-5)
    x = torch.zeros(1, 1, 8, 8, requires_grad=True)
    L.distillation(x, teacher).backward()
    # gradient descent moves sigmoid(x)=0.5 towards each teacher value
    assert ((-x.grad) * (teacher - 0.5) >= 0).all()
    assert float(L.distillation(exact, teacher, temperature=2.0)) == pytest.approx(0.0, abs=1e-5)


def test_parsing_targets_three_classes():
    cls = L.parsing_targets(square(), width=2)
    assert set(cls.unique().tolist()) == {0, 1, 2}
    assert int(cls[0, 16, 16]) == 1 and int(cls[0, 0, 0]) == 0 and int(cls[0, 8, 8]) == 2


def test_total_loss_uses_the_configured_terms():
    t = square().repeat(2, 1, 1, 1)
    out = {"matte": torch.zeros_like(t), "parsing": torch.zeros(2, 3, 32, 32)}
    batch = {"alpha": t, "teacher": torch.full_like(t, 0.3)}
    w = L.LossWeights(bce=1, dice=0, boundary=0, ohem=0, distill=0.5, parsing=1)
    total, terms = L.total_loss(out, batch, w, parsing_stage=True)
    assert set(terms) == {"bce", "distill", "parsing"}
    assert float(total) == pytest.approx(sum(terms.values()), rel=1e-5)
    _, terms = L.total_loss(out, batch, w, parsing_stage=False)
    assert "parsing" not in terms
    with pytest.raises(TrainError, match="unknown loss"):
        L.LossWeights.from_dict({"bce": 1, "focal": 2})


def test_model_sizes_shapes_and_flops():
    m = build_model(0.5)
    assert count_params(m) < 500_000
    assert count_params(build_model(1.0)) > 2 * count_params(m)
    m.eval()
    with torch.no_grad():
        out = m(torch.zeros(2, 3, 144, 256))
    assert out["matte"].shape == (2, 1, 144, 256) and out["parsing"].shape == (2, 3, 144, 256)
    assert build_model(0.5, parsing_head=False)(torch.zeros(1, 3, 64, 64))["parsing"] is None
    f256, f144 = count_flops(m, 256, 256), count_flops(m, 144, 256)
    assert 1e8 < f256 < 1e9
    assert f144 / f256 == pytest.approx(144 / 256, rel=0.05)
    with pytest.raises(TrainError):
        build_model(5.0)
