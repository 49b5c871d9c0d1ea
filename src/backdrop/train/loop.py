"""The training loop: config-driven, seeded, resumable, validated every epoch.

What a run leaves in ``run.out``: ``config.json`` (the resolved config), ``log.csv`` (one row per
epoch: losses, learning rate, validation IoU and boundary F, seconds), ``last.pt`` (resume point),
``best.pt`` (best validation IoU), ``final.pt`` (the last weights with precise BatchNorm
statistics: what is exported and reported), ``model.onnx`` (when ``run.export``) and
``eval.json`` (the held-out evaluation split, student beside the teacher, when
``run.report_eval``).

Reproducibility: the data of sample ``i`` in epoch ``e`` is a pure function of (seed, e, i) and
the batch order a function of (seed, e), so a run resumed from ``last.pt`` continues exactly as
an uninterrupted run would (up to floating-point non-determinism of threaded kernels).

Devices: the CPU (threads from ``run.threads``) or a CUDA GPU when present, with automatic mixed
precision (float16 autocast + gradient scaling) there.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from ..io.atomic import check_target, make_folder, write_bytes
from . import TrainError, require_torch
from .config import TrainConfig
from .data import load_backgrounds, remove_person
from .evaluate import Labelled, load_split, report_eval, score
from .runtime import collate, lr_at, pick_device, seed_everything, to_batch
from .synth import SynthConfig, SynthDataset

log = logging.getLogger(__name__)
CSV_FIELDS = ["epoch", "step", "seconds", "lr", "loss", "bce", "dice", "lovasz", "boundary", "ohem",
              "consistency", "distill", "parsing", "val_iou", "val_boundary_f"]


class Trainer:
    """Holds the model, optimiser, data and state of one run; :meth:`fit` runs it."""

    def __init__(self, cfg: TrainConfig, *, quiet: bool = False, init_from: str | Path | None = None,
                 people: list[tuple[np.ndarray, np.ndarray]] | None = None,
                 backgrounds: list[np.ndarray] | None = None, val: list[Labelled] | None = None,
                 teacher=None):
        torch = require_torch()
        from .model import build_model
        from .predict import spec_for

        self.cfg = cfg
        self.quiet = quiet
        self.out = Path(cfg.run.out)
        if cfg.run.threads:
            torch.set_num_threads(int(cfg.run.threads))
        self.device = pick_device(cfg.run.device)
        self.amp = bool(cfg.run.amp and self.device.type == "cuda")
        seed_everything(cfg.run.seed)
        mc = cfg.model
        self.model = build_model(mc.width, parsing_head=mc.parsing_head).to(self.device)
        if init_from:
            from .predict import load_weights, read_checkpoint

            state = read_checkpoint(init_from)
            missing = load_weights(self.model, state["model"], Path(init_from).name, strict=False)
            if missing.unexpected_keys or [k for k in missing.missing_keys if not k.startswith("parsing")]:
                raise TrainError(f"{Path(init_from).name} does not match model.width={mc.width}")
        self.spec = spec_for(mc.name, mc.input_height, mc.input_width, model_width=mc.width)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.epoch = 0
        self.step = 0
        self.best = -1.0
        self.elapsed_before = 0.0  # seconds trained before a resume
        self._t0 = time.monotonic()
        self._people, self._backgrounds, self._val, self._teacher = people, backgrounds, val, teacher
        self.dataset: SynthDataset | None = None

    # -- data ---------------------------------------------------------------------------------
    def build_data(self) -> None:
        cfg, d = self.cfg, self.cfg.data
        if self._people is None:
            if not d.train:
                raise TrainError("config data.train lists no folders of labelled images")
            train = load_split(d.train, d.train_split, cfg, max_side=d.max_side, limit=d.limit)
            self._people = [(t.image, t.alpha) for t in train]
            if not self._people:
                raise TrainError(f"no training images: the {d.train_split!r} split of {', '.join(d.train)} is "
                                 "empty (more pairs, or lower data.eval_fraction / data.val_fraction)")
        if self._backgrounds is None:
            if d.backgrounds:
                self._backgrounds = load_backgrounds(d.backgrounds, max_side=d.max_side)
            else:  # background plates from the training photos themselves (never eval photos)
                self._backgrounds = [remove_person(img, a) for img, a in self._people]
        if self._val is None:
            if d.val:
                self._val = load_split(d.val, "all", cfg)
            else:
                self._val = load_split(d.train, "val", cfg) if d.train else []
        if self._teacher is None and d.teacher and self.cfg.loss.distill:
            from .teacher import load_teacher

            self._teacher = load_teacher(d.teacher, threads=1)
        sc = SynthConfig(height=cfg.model.input_height, width=cfg.model.input_width, synth=d.synth,
                         consistency=bool(cfg.loss.consistency), geometry=cfg.augment.geometry,
                         photo=cfg.augment.photo)
        self.dataset = SynthDataset(self._people, self._backgrounds, sc, length=d.samples_per_epoch,
                                    seed=cfg.run.seed, teacher=self._teacher if cfg.loss.distill else None)
        log.info("training on %d people, %d backgrounds, %d validation images",
                 len(self._people), len(self._backgrounds), len(self._val))

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self._t0

    def time_fraction(self) -> float:
        limit = self.cfg.run.time_limit_min
        return self.elapsed() / (limit * 60.0) if limit else 0.0

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.cfg.data.samples_per_epoch // self.cfg.optim.batch_size)

    # -- checkpoints ----------------------------------------------------------------------------
    def state(self) -> dict:
        torch = require_torch()
        return {"model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scaler": self.scaler.state_dict(), "epoch": self.epoch, "step": self.step,
                "best": self.best, "elapsed": self.elapsed(), "config": self.cfg.to_dict(), "spec": self.spec.to_json(),
                "torch_rng": torch.get_rng_state()}

    def resume(self, path: str | Path) -> None:
        torch = require_torch()
        from .predict import load_weights, read_checkpoint

        state = read_checkpoint(path)
        name = Path(path).name
        load_weights(self.model, state["model"], name)
        try:
            self.opt.load_state_dict(state["optimizer"])
            if "scaler" in state:
                self.scaler.load_state_dict(state["scaler"])
            self.epoch, self.step, self.best = int(state["epoch"]), int(state["step"]), float(state["best"])
            self.elapsed_before = float(state.get("elapsed", 0.0))
            if "torch_rng" in state:
                torch.set_rng_state(state["torch_rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainError(f"cannot resume from {name}: its training state is incomplete or damaged "
                             f"({type(exc).__name__}: {str(exc)[:120]})") from None
        if not 0 <= self.epoch <= 10 ** 6 or self.step < 0:
            raise TrainError(f"cannot resume from {name}: epoch {self.epoch}, step {self.step}")

    # -- one epoch ------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        torch = require_torch()
        from .losses import total_loss

        cfg = self.cfg
        assert self.dataset is not None
        self.dataset.set_epoch(self.epoch)
        order = np.random.default_rng([cfg.run.seed, self.epoch, 7]).permutation(len(self.dataset))
        crop_rng = np.random.default_rng([cfg.run.seed, self.epoch, 11])
        loader = torch.utils.data.DataLoader(self.dataset, batch_size=cfg.optim.batch_size,
                                             sampler=order.tolist(), num_workers=cfg.data.workers,
                                             collate_fn=collate, drop_last=True)
        total_steps = cfg.optim.epochs * self.steps_per_epoch
        parsing_stage = self.epoch < cfg.optim.parsing_epochs
        sums: dict[str, float] = {}
        n = 0
        lr = float("nan")
        self.model.train()
        bar = _progress(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}/{cfg.optim.epochs}",
                        disable=self.quiet)
        for samples in loader:
            batch = to_batch(samples, self.device, cfg.data.crop, crop_rng)
            lr = lr_at(self.step, total_steps, cfg.optim.lr, cfg.optim.warmup_steps, self.time_fraction())
            for g in self.opt.param_groups:
                g["lr"] = lr
            with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                if "image2" in batch:  # both views in one pass (BatchNorm sees one batch)
                    both = self.model(torch.cat([batch["image"], batch["image2"]]))
                    k = batch["image"].shape[0]
                    out = {key: (v[:k] if v is not None else None) for key, v in both.items()}
                    out2 = {key: (v[k:] if v is not None else None) for key, v in both.items()}
                else:
                    out, out2 = self.model(batch["image"]), None
            out = {k: (v.float() if v is not None else None) for k, v in out.items()}
            if out2 is not None:
                out2 = {k: (v.float() if v is not None else None) for k, v in out2.items()}
            loss, terms = total_loss(out, batch, cfg.loss, parsing_stage=parsing_stage, out2=out2)
            if not torch.isfinite(loss):
                raise TrainError(f"loss became {float(loss)} at step {self.step}: lower optim.lr")
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip:
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.opt)
            self.scaler.update()
            self.step += 1
            n += 1
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{sums['loss'] / n:.3f}")
            bar.update(1)
        bar.close()
        stats = {k: v / max(1, n) for k, v in sums.items()}
        stats["lr"] = lr
        return stats

    def recalibrate_bn(self, batches: int | None = None) -> None:
        """Re-estimate BatchNorm statistics from a few training batches with the final weights.

        The running averages lag behind weights that moved fast (early epochs, short runs), and
        the eval-mode network can then predict nothing at all although the train-mode one is
        right ("precise BN", Wu & Johnson 2021). A few forward passes without gradients fix it;
        training itself is unchanged, only what is validated, saved and exported.
        """
        torch = require_torch()
        n = int(self.cfg.optim.bn_batches if batches is None else batches)
        if n <= 0 or self.dataset is None:
            return
        bns = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        bs = self.cfg.optim.batch_size
        rng = np.random.default_rng([self.cfg.run.seed, self.epoch, 13])
        idx = rng.permutation(len(self.dataset))[: n * bs]
        self.model.train()
        with torch.no_grad():
            for k in range(0, len(idx) - bs + 1, bs):
                batch = to_batch([self.dataset[int(i)] for i in idx[k:k + bs]], self.device)
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
                    self.model(batch["image"])
        for m, mom in zip(bns, momenta):
            m.momentum = mom

    def validate(self) -> dict:
        from .predict import TorchSegmenter

        if not self._val:
            return {"iou": float("nan"), "boundary_f": float("nan"), "images": 0}
        return score(TorchSegmenter(self.model, self.spec), self._val)

    # -- the run ----------------------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> dict:
        from .predict import save_checkpoint

        cfg = self.cfg
        make_folder(self.out, "run folder (run.out)")
        last = self.out / "last.pt"
        if resume:
            if not last.is_file():
                raise TrainError(f"nothing to resume: {last} does not exist")
            self.resume(last)
            log.info("resumed at epoch %d (step %d)", self.epoch, self.step)
        elif last.exists():
            raise TrainError(f"{self.out} already holds a run: use --resume, or another run.out")
        write_bytes(self.out / "config.json", json.dumps(cfg.to_dict(), indent=2))
        if self.dataset is None:
            self.build_data()
        log_path = self.out / "log.csv"
        self._t0 = time.monotonic()
        history = []
        # the log is rewritten whole (atomically) after every epoch: it is small, and an append in
        # place would write into whatever stands at that name (a pipe, a device)
        f = io.StringIO(_read_log(log_path) if resume else "")
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if not f.getvalue():
            writer.writeheader()
        while self.epoch < cfg.optim.epochs:
            stats = self.train_epoch()
            self.recalibrate_bn()
            val = self.validate()
            self.epoch += 1
            row = {"epoch": self.epoch, "step": self.step, "seconds": round(self.elapsed(), 1),
                   **{k: round(v, 5) for k, v in stats.items()},
                   "val_iou": round(val["iou"], 4), "val_boundary_f": round(val["boundary_f"], 4)}
            writer.writerow(row)
            write_bytes(log_path, f.getvalue())
            history.append(row)
            if not self.quiet:
                shown = (f"  val IoU {val['iou']:.4f}  boundary F {val['boundary_f']:.4f}"
                         if val["images"] else "")
                print(f"epoch {self.epoch}: loss {stats.get('loss', float('nan')):.4f}{shown}", file=sys.stderr)
            improved = val["iou"] > self.best or math.isnan(val["iou"])
            if improved and not math.isnan(val["iou"]):
                self.best = val["iou"]
            save_checkpoint(last, self.state())
            if improved:
                save_checkpoint(self.out / "best.pt", self.state())
            limit = cfg.run.time_limit_min
            if limit and self.time_fraction() >= 1.0 and self.epoch < cfg.optim.epochs:
                log.warning("time limit of %.1f min reached after epoch %d; resume with --resume",
                            limit, self.epoch)
                break
        final = self.finalize()
        return {"epochs": self.epoch, "steps": self.step, "best_val_iou": self.best, "history": history,
                "final_val_iou": final["iou"], "seconds": self.elapsed()}

    def finalize(self) -> dict:
        """``final.pt``: the last weights with BatchNorm statistics re-estimated on
        ``optim.bn_final_batches`` batches. Per-epoch re-estimates use few batches (cheap, but
        noisy: validation IoU wobbles by several points between epochs whose weights barely
        differ); the model we export deserves a precise one. Nothing is selected on data here,
        so the eval split stays a clean test."""
        from .predict import save_checkpoint

        self.recalibrate_bn(self.cfg.optim.bn_final_batches)
        val = self.validate()
        final_val = {k: val[k] for k in ("iou", "boundary_f")}
        save_checkpoint(self.out / "final.pt", {**self.state(), "final_val": final_val})
        if not self.quiet and val["images"]:
            print(f"final ({self.cfg.optim.bn_final_batches} BatchNorm batches): val IoU {val['iou']:.4f}  "
                  f"boundary F {val['boundary_f']:.4f}", file=sys.stderr)
        return val


def _read_log(path: Path) -> str:
    """The log of the run being resumed (empty when there is none yet)."""
    if not path.exists():
        return ""
    check_target(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainError(f"cannot read {path} to resume: {exc}") from None
    return text if text.endswith("\n") or not text else text + "\n"


def _progress(total: int, desc: str, disable: bool):
    """tqdm on a terminal, silent otherwise (logs and CI stay readable)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=disable or not sys.stderr.isatty())


def fit(cfg: TrainConfig, *, resume: bool = False, quiet: bool = False, init_from=None) -> dict:
    """Train as the config says; export and evaluate at the end when the config asks."""
    trainer = Trainer(cfg, quiet=quiet, init_from=init_from)
    result = trainer.fit(resume=resume)
    out = Path(cfg.run.out)
    best = out / "final.pt"
    result["checkpoint"] = str(best)
    if cfg.run.export:
        from .export import export_checkpoint

        result["onnx"] = str(export_checkpoint(best, out / "model.onnx"))
    if cfg.run.report_eval and cfg.data.train:
        result["eval"] = report_eval(cfg, best, out / "eval.json")
    return result
