"""``backdrop train relight``: a tiny learned estimate of the relight stage's look (issue 23).

In the spirit of Harmonizer (Ke et al., ECCV 2022: a few global filter values regressed from
low-resolution features of the foreground and the background), a two-layer perceptron maps the
statistics the classical estimate uses (``relight_estimate.scene_features``: person, face and
background statistics and their differences) to the five values of a :class:`Look` (exposure,
warm, green, contrast, saturation). It is trained end to end on the restoration error itself:
the look is applied in linear light by a differentiable copy of ``relight.apply_look_linear``
and the loss is the alpha-weighted squared error against the photo (fMSE), on synthetic pairs
made as ``backdrop eval --harmonize`` makes them (``evaluate/perturb.py``) but from other draws,
of the *tuning* photos only: the held-out ones (``evaluate.harmonize.held_out``) never take part.
The low-light lift stays classical (it runs first, as in the stage).

A run writes ``config.json``, ``log.csv`` (per epoch: train and validation fMSE, the classical
estimate's on the same validation pairs) and ``relight.json`` (the weights, with the feature
normalisation): numbers only, read by ``compose/relight_learned.py`` with NumPy.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import TrainError, require_torch

KINDS = ("none", "exposure", "temperature", "contrast", "saturation", "lowlight")


@dataclass
class RelightTrainConfig:
    data: list[str] = field(default_factory=list)  # folders with images/ and masks/ (or index.csv)
    out: str = "runs/relight"
    per_photo: int = 12  # perturbed pairs per tuning photo
    side: int = 96  # the pictures are looked at this long side ...
    pixels: int = 256  # ... and the loss at this many of the person's pixels, drawn by alpha (its fMSE, unbiased)
    limit: int | None = None  # photos per folder (a quick look); None: all
    hidden: int = 24
    epochs: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-3
    val_share: float = 0.2  # of the tuning photos, by name hash: validation during training
    seed: int = 0


def _pairs(folder: Path):
    """(``SET/stem``, photo, alpha): named as ``backdrop eval --harmonize`` names them, so the
    held-out split is the same photos."""
    from ..evaluate.harmonize import named_people

    images, masks = folder / "images", folder / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise TrainError(f"{folder} needs images/ and masks/ folders")
    return named_people(images, masks)


def make_samples(cfg: RelightTrainConfig) -> dict[str, np.ndarray]:
    """Synthetic pairs of the tuning photos: features (after the classical lift), the lifted
    input and the photo at ``pixels`` of the person's pixels (drawn with probability alpha, so their
    plain mean squared error is the fMSE's estimate: 9x fewer than a 48 x 48 picture, and one
    thread does a step of 2,600 pairs in about a second), and the person's mean log2 luminance."""
    from ..compose.lowlight import lift_person, person_noise
    from ..compose.relight_estimate import (RelightConstants, estimate_look, exposure_of, lift_gain, person_box,
                                            scene_features, scene_of)
    from ..evaluate.harmonize import MAX_SIDE, held_out
    from ..evaluate.perturb import draw_amount, perturb_person, perturbed_composite, seeded_rng

    c = RelightConstants()
    out: dict[str, list] = {k: [] for k in ("feats", "lifted", "photo", "alpha", "lum", "val", "classical")}
    for folder in map(Path, cfg.data):
        for n, (name, photo, alpha) in enumerate(_pairs(folder)):
            if cfg.limit is not None and n >= cfg.limit:
                break
            if held_out(name):
                continue
            k = min(1.0, MAX_SIDE / max(photo.shape[:2]))
            if k < 1:
                size = (max(1, round(photo.shape[1] * k)), max(1, round(photo.shape[0] * k)))
                photo, alpha = cv2.resize(photo, size, interpolation=cv2.INTER_AREA), cv2.resize(alpha, size)
            if float(alpha.mean()) < 0.01:
                continue
            val = (hash_share(name) < cfg.val_share)
            for j in range(cfg.per_photo):
                rng = seeded_rng(name, f"train{j}", cfg.seed + 1)
                kind = KINDS[int(rng.integers(len(KINDS)))]
                if kind == "none":
                    image = photo
                else:
                    amount, noise = draw_amount(kind, rng)
                    image = perturbed_composite(photo, alpha, perturb_person(photo, kind, amount, rng, alpha, noise))
                box = person_box(alpha)
                highlight, level = exposure_of(image, alpha)
                noisy, noise_level = person_noise(image, alpha, box)
                gain = lift_gain(highlight, level, noisy, c)
                lifted = lift_person(image, gain, level, noise_level, box) if gain > 1.001 else image
                scene = scene_of(lifted, alpha, image)
                kx = min(1.0, cfg.side / max(alpha.shape))
                small = (max(1, round(alpha.shape[1] * kx)), max(1, round(alpha.shape[0] * kx)))
                a = cv2.resize(alpha, small, interpolation=cv2.INTER_AREA).reshape(-1).astype(np.float64)
                pick = rng.choice(a.size, cfg.pixels, p=a / a.sum())
                out["feats"].append(scene_features(scene))
                for key, img in (("lifted", lifted), ("photo", photo)):
                    out[key].append(cv2.resize(img, small, interpolation=cv2.INTER_AREA).reshape(-1, 3)[pick][:, None])
                out["alpha"].append(np.ones((cfg.pixels, 1), np.float32))
                out["lum"].append(scene.person.lum)
                out["classical"].append(estimate_look(scene, c).vector())
                out["val"].append(val)
    if not out["feats"]:
        raise TrainError("no tuning photos with a person in " + ", ".join(cfg.data))
    return {k: np.asarray(v) for k, v in out.items()}


def hash_share(name: str) -> float:
    import zlib

    return (zlib.crc32(("val/" + name).encode()) % 1000) / 1000


def _torch_look(torch, lifted_u8, look, lum):
    """relight.apply_look_linear in torch: (N, H, W, 3) uint8 -> sRGB float levels."""
    from ..compose.relight import LUMA, TO_LINEAR

    lin = torch.as_tensor(TO_LINEAR)[lifted_u8.long()]
    e, warm, green, contrast, sat = look.unbind(1)
    log_gain = torch.stack([warm / 2 - green / 3, 2 * green / 3, -warm / 2 - green / 3], 1) + e[:, None]
    lin = lin * torch.exp2(log_gain)[:, None, None, :]
    y = (lin * torch.as_tensor(LUMA)).sum(-1).clamp_min(1 / 1024)
    pivot = torch.exp2(lum + e)[:, None, None]
    y_new = pivot * torch.pow(y / pivot, torch.exp2(contrast)[:, None, None])
    lin = lin * (y_new / y)[..., None]
    s = torch.exp2(sat)[:, None, None, None]
    lin = (y_new[..., None] + s * (lin - y_new[..., None])).clamp(0, 1)
    srgb = torch.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp_min(1e-8) ** (1 / 2.4) - 0.055)
    return srgb * 255


def _fmse(torch, out, photo, alpha):
    d = ((out - photo.float()) ** 2).mean(-1)
    return (d * alpha).sum((1, 2)) / alpha.sum((1, 2)).clamp_min(1e-6)


def fit_relight(cfg: RelightTrainConfig, quiet: bool = False) -> dict:
    """Train and write the run folder (see the module docstring); returns the summary."""
    torch = require_torch()
    torch.set_num_threads(1)  # a tiny model: one thread measured 7x faster per step than two on 2 busy cores
    from ..compose.relight import Look
    from ..compose.relight_estimate import FEATURES

    torch.manual_seed(cfg.seed)
    run = Path(cfg.out)
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    t0 = time.time()
    data = make_samples(cfg)
    feats = data["feats"].astype(np.float32)
    mean, std = feats[~data["val"]].mean(0), feats[~data["val"]].std(0) + 1e-3
    x = torch.as_tensor((feats - mean) / std)
    lifted, photo = torch.as_tensor(data["lifted"]), torch.as_tensor(data["photo"])
    alpha, lum = torch.as_tensor(data["alpha"]), torch.as_tensor(data["lum"].astype(np.float32))
    tr, va = torch.as_tensor(~data["val"]), torch.as_tensor(data["val"])
    net = torch.nn.Sequential(torch.nn.Linear(FEATURES, cfg.hidden), torch.nn.Tanh(),
                              torch.nn.Linear(cfg.hidden, cfg.hidden), torch.nn.Tanh(),
                              torch.nn.Linear(cfg.hidden, len(Look().vector())))
    torch.nn.init.zeros_(net[-1].weight)
    torch.nn.init.zeros_(net[-1].bias)  # starts as "no correction"
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    zero = torch.zeros(len(data["val"]), 5)
    classical = torch.as_tensor(data["classical"].astype(np.float32))
    with torch.no_grad():
        none_val = float(_fmse(torch, _torch_look(torch, lifted[va], zero[va], lum[va]), photo[va], alpha[va]).mean())
        classical_val = float(_fmse(torch, _torch_look(torch, lifted[va], classical[va], lum[va]), photo[va],
                                    alpha[va]).mean())
    rows, best = [], (float("inf"), None)
    for epoch in range(cfg.epochs):
        opt.zero_grad()
        loss = _fmse(torch, _torch_look(torch, lifted[tr], net(x[tr]), lum[tr]), photo[tr], alpha[tr]).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            val = float(_fmse(torch, _torch_look(torch, lifted[va], net(x[va]), lum[va]), photo[va], alpha[va]).mean())
        rows.append({"epoch": epoch + 1, "train_fmse": round(loss.item(), 3), "val_fmse": round(val, 3),
                     "val_fmse_lift_only": round(none_val, 3), "val_fmse_classical": round(classical_val, 3)})
        if val < best[0]:
            best = (val, [p.detach().numpy().copy() for p in net.parameters()])
        if not quiet and (epoch + 1) % 50 == 0:
            print(f"epoch {epoch + 1}: train fMSE {loss.item():.1f}, validation {val:.1f} (lift only {none_val:.1f}, "
                  f"classical {classical_val:.1f})")
    with open(run / "log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    params = best[1]
    weights = {"features": FEATURES, "mean": mean.tolist(), "std": std.tolist(),
               "layers": [{"weight": params[i].tolist(), "bias": params[i + 1].tolist()} for i in (0, 2, 4)],
               "val_fmse": best[0], "val_fmse_lift_only": none_val, "val_fmse_classical": classical_val,
               "samples": int(len(feats)),
               "config": asdict(cfg)}
    (run / "relight.json").write_text(json.dumps(weights))
    return {"samples": int(len(feats)), "best_val_fmse": round(best[0], 2), "val_fmse_lift_only": round(none_val, 2),
            "val_fmse_classical": round(classical_val, 2),
            "seconds": round(time.time() - t0, 1), "weights": str(run / "relight.json")}
