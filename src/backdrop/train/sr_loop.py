"""``backdrop train sr``: train the x2 luma super-resolution network, resumably, and export it.

The network (:class:`LumaSR`) is ESPCN's shape (Shi et al. 2016, "Real-Time Single Image and
Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network"): a few 3x3
convolutions at the small size and a pixel shuffle, kept tiny so that 360p -> 720p runs at
30 frames/s on two CPU cores and as a handful of WebGL passes. Two choices differ from ESPCN:

- it predicts the *residual* over a bilinear upscale (as VDSR, Kim et al. 2016, does over
  bicubic): the small network then spends its capacity on edges and codec damage, and the last
  layer starts at zero so training starts from bilinear, not from noise. Bilinear because the
  browser gets it for free from the texture unit, with the same half-pixel centres as OpenCV.
- its convolutions are unpadded, and the input is padded once by edge replication (``radius`` =
  the number of layers): then Python (one ``copyMakeBorder``), ONNX and the page (clamped
  texture reads in the first pass) compute the same numbers at the border too.

What a run leaves in ``run.out``: ``config.json``, ``pairs.npz`` (the degraded data, rebuilt
identically when missing), ``log.csv`` (one row per validation), ``last.pt`` (resume point) and
the export (``<name>.npz``, ``<name>.onnx`` and copies of config and log), also written to
``run.export_to`` when set (the package's ``models/weights`` for the shipped model). The batch
of step ``s`` is a pure function of (seed, s), so a resumed run continues as an uninterrupted
one would (up to threaded floating-point order).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

from . import TrainError, require_torch
from .runtime import lr_at, seed_everything
from .sr_config import SRConfig
from .sr_data import Pairs, build_pairs, load_pairs, sample_batch, save_pairs

log = logging.getLogger(__name__)
CSV_FIELDS = ["step", "seconds", "lr", "loss", "val_psnr", "val_psnr_bilinear", "val_psnr_bicubic"]
torch = require_torch()
nn = torch.nn


class LumaSR(nn.Module):
    """Padded luma (N, 1, H+2r, W+2r) in [0, 1] -> residual over bilinear (N, 1, 2H, 2W)."""

    def __init__(self, channels: list[int], scale: int = 2):
        super().__init__()
        widths = [1, *channels]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(cin, cout, 3), nn.ReLU(inplace=True)]
        last = nn.Conv2d(widths[-1], scale * scale, 3)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)
        self.shuffle = nn.PixelShuffle(scale)
        self.radius = len(channels) + 1

    def forward(self, y):
        return self.shuffle(self.body(y))

    def convs(self) -> list:
        return [m for m in self.body if isinstance(m, nn.Conv2d)]


def bilinear_base(lows: "torch.Tensor", radius: int) -> "torch.Tensor":
    """The bilinear 2x of padded patches, cropped to the centre: equal to OpenCV's INTER_LINEAR
    of the whole frame there (half-pixel centres; each output reads only its 2x2 neighbours)."""
    up = torch.nn.functional.interpolate(lows, scale_factor=2, mode="bilinear", align_corners=False)
    return up[..., 2 * radius:up.shape[-2] - 2 * radius, 2 * radius:up.shape[-1] - 2 * radius]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0 ** 2 / max(mse, 1e-10))


def upscale_luma(model: LumaSR, low: np.ndarray) -> np.ndarray:
    """The model on a whole uint8 Y plane, as the runtime does it (pad, residual, add, round)."""
    r = model.radius
    padded = cv2.copyMakeBorder(low, r, r, r, r, cv2.BORDER_REPLICATE).astype(np.float32) / 255.0
    with torch.no_grad():
        res = model(torch.from_numpy(padded)[None, None])[0, 0].numpy()
    base = cv2.resize(low.astype(np.float32), (low.shape[1] * 2, low.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    return np.clip(np.rint(base + 255.0 * res), 0, 255).astype(np.uint8)


class SRTrainer:
    def __init__(self, cfg: SRConfig, *, quiet: bool = False):
        self.cfg, self.quiet, self.out = cfg, quiet, Path(cfg.run.out)
        if cfg.run.threads:
            torch.set_num_threads(int(cfg.run.threads))
        seed_everything(cfg.run.seed)
        self.model = LumaSR(cfg.model.channels, cfg.model.scale)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.optim.lr)
        self.step, self.elapsed_before, self._lr = 0, 0.0, 0.0
        self._t0 = time.monotonic()
        self.train: Pairs | None = None
        self.val: Pairs | None = None

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._t0

    def data(self) -> None:
        cache = self.out / "pairs.npz"
        if cache.is_file():
            self.train, self.val = load_pairs(cache)
        else:
            if not self.quiet:
                print("sr: degrading the training frames (H.264 / VP8 at call bit rates)...", file=sys.stderr)
            self.train, self.val = build_pairs(self.cfg.data, self.cfg.run.seed)
            save_pairs(cache, self.train, self.val)
        if not self.train.low:
            raise TrainError("no training frames left after the validation split")
        log.info("sr: %d training frames, %d validation frames", len(self.train.low), len(self.val.low))

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(), "step": self.step,
                "elapsed": self.elapsed(), "config": self.cfg.to_dict()}

    def resume(self, path: Path) -> None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
        except Exception as exc:
            raise TrainError(f"cannot resume from {path.name}: {str(exc).splitlines()[0][:160]}") from None
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.elapsed_before = int(state["step"]), float(state["elapsed"])

    def validate(self) -> dict:
        self.model.eval()
        ours, lin, cub = [], [], []
        for hi, lo in zip(self.val.high, self.val.low):
            size = (lo.shape[1] * 2, lo.shape[0] * 2)
            ours.append(psnr(upscale_luma(self.model, lo), hi))
            lin.append(psnr(cv2.resize(lo, size, interpolation=cv2.INTER_LINEAR), hi))
            cub.append(psnr(cv2.resize(lo, size, interpolation=cv2.INTER_CUBIC), hi))
        self.model.train()
        mean = (lambda v: round(float(np.mean(v)), 3) if v else float("nan"))
        return {"val_psnr": mean(ours), "val_psnr_bilinear": mean(lin), "val_psnr_bicubic": mean(cub)}

    def train_steps(self, until: int) -> float:
        o, r = self.cfg.optim, self.model.radius
        total = 0.0
        n = 0
        while self.step < until:
            rng = np.random.default_rng([self.cfg.run.seed, self.step, 5])
            lows, highs = sample_batch(self.train, o.batch_size, self.cfg.data.patch, r, rng)
            x = torch.from_numpy(lows)[:, None].float().div_(255.0)
            target = torch.from_numpy(highs)[:, None].float().div_(255.0) - bilinear_base(x, r)
            lr = lr_at(self.step, o.steps, o.lr, o.warmup_steps, self._time_fraction())
            for g in self.opt.param_groups:
                g["lr"] = lr
            loss = (self.model(x) - target).abs().mean()  # L1: sharper than L2 at the same PSNR
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {float(loss)} at step {self.step}: lower optim.lr")
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.step += 1
            total, n = total + float(loss.detach()), n + 1
        self._lr = lr
        return total / max(1, n)

    def _time_fraction(self) -> float:
        limit = self.cfg.run.time_limit_min
        return self.elapsed() / (limit * 60.0) if limit else 0.0

    def fit(self, *, resume: bool = False) -> dict:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        last = self.out / "last.pt"
        if resume:
            if not last.is_file():
                raise TrainError(f"nothing to resume: {last} does not exist")
            self.resume(last)
        elif last.exists():
            raise TrainError(f"{self.out} already holds a run: use --resume, or another run.out")
        (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        self.data()
        self._t0 = time.monotonic()
        log_path = self.out / "log.csv"
        new_log = not resume or not log_path.exists()
        with open(log_path, "w" if new_log else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
            if new_log:
                writer.writeheader()
                writer.writerow({"step": 0, "seconds": 0, "lr": 0, "loss": "", **self.validate()})
            while self.step < cfg.optim.steps:
                loss = self.train_steps(min(cfg.optim.steps, self.step + cfg.optim.eval_every))
                row = {"step": self.step, "seconds": round(self.elapsed(), 1), "lr": f"{self._lr:.2e}",
                       "loss": round(loss, 6), **self.validate()}
                writer.writerow(row)
                f.flush()
                if not self.quiet:
                    print(f"step {self.step}: loss {loss:.5f}  val Y-PSNR {row['val_psnr']:.3f} dB "
                          f"(bicubic {row['val_psnr_bicubic']:.3f})", file=sys.stderr)
                _save(last, self.state())
                if cfg.run.time_limit_min and self._time_fraction() >= 1.0 and self.step < cfg.optim.steps:
                    log.warning("time limit of %.1f min reached at step %d; resume with --resume",
                                cfg.run.time_limit_min, self.step)
                    return {"steps": self.step, "finished": False, **row}
        exported = export(self.model, cfg, self.out)
        if cfg.run.export_to:
            exported = export(self.model, cfg, Path(cfg.run.export_to), log_from=self.out)
        return {"steps": self.step, "finished": True, "seconds": round(self.elapsed(), 1),
                "exported": [str(p) for p in exported], **self.validate()}


def _save(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".part")
    torch.save(state, tmp)
    tmp.replace(path)


def export(model: LumaSR, cfg: SRConfig, folder: Path, *, log_from: Path | None = None) -> list[Path]:
    """``<name>.npz`` (weights, read by the runtime and served to the page), ``<name>.onnx``
    (the same graph for ONNX Runtime / OpenCV), and beside them the config and the log."""
    from ..superres.network import INPUT_NAME, OUTPUT_NAME, save_weights

    folder.mkdir(parents=True, exist_ok=True)
    name = cfg.model.name
    convs = model.convs()
    meta = {"name": name, "scale": cfg.model.scale, "channels": cfg.model.channels, "radius": model.radius,
            "luma": "BT.601 limited range (Y 16..235), scaled to [0, 1]", "residual": "bilinear",
            "licence": "Apache-2.0", "made_by": f"backdrop train sr (config {name}.config.json)"}
    npz = save_weights(folder / f"{name}.npz", [(c.weight.detach().numpy(), c.bias.detach().numpy()) for c in convs],
                       meta)
    onnx_path = folder / f"{name}.onnx"
    tmp = onnx_path.with_name(onnx_path.name + ".part")
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(tmp), dynamo=False, opset_version=17,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {2: "h", 3: "w"}, OUTPUT_NAME: {2: "h2", 3: "w2"}})
    tmp.replace(onnx_path)
    (folder / f"{name}.config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    src = (log_from or folder) / "log.csv"
    if log_from is not None and src.is_file():
        shutil.copyfile(src, folder / f"{name}.log.csv")
    return [npz, onnx_path]


def fit_sr(cfg: SRConfig, *, resume: bool = False, quiet: bool = False) -> dict:
    return SRTrainer(cfg, quiet=quiet).fit(resume=resume)


__all__ = ["LumaSR", "SRTrainer", "export", "fit_sr", "upscale_luma"]
