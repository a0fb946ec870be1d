"""TUSK's iterative trainer (paper Sec. 3.3): one network step, then ``sw_steps`` prototype steps.

Usage::

    from tusk.config import load_config
    from tusk.training import Trainer
    metrics = Trainer(load_config("quickstart"), "runs/quickstart").run()

A run directory holds ``config.yaml``, ``checkpoint.pt`` (atomic; see
:mod:`tusk.training.checkpoint`), ``metrics.json``, PNG pictures (``detections.png``,
``prototypes.png``, ``images/``) and TensorBoard logs (``tensorboard/``).

Determinism: the model is initialised from ``train.seed``; every random draw of step ``s``
(batch order, warps, GMM noise, projections) comes from generators keyed by ``(seed, s)``
(:mod:`~tusk.training.seeding`, :mod:`~tusk.training.data`). On CPU a run resumed from a
checkpoint therefore reproduces the uninterrupted run bit for bit.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import torch

from .. import ops
from ..config import Config, config_from_dict, save_config
from ..config_overrides import carry_resumable
from ..losses import PerceptualLoss, mse_loss
from ..model import TUSK
from . import check_ops as op_check
from .checkpoint import (CheckpointError, checkpoint_path, load_checkpoint, remove_stale_temporaries,
                         restore_rng_states, save_checkpoint)
from .checkpoint_fields import check_optimizer_fits
from .data import build_dataset, first_items, training_batches
from .evaluation import evaluate_run
from .pairs import make_pairs
from .run_lock import RunLockError, file_signature, hold_run_lock
from .seeding import step_generator
from .step import network_losses, prototype_loss
from .visualize import prototype_colours, prototype_sheet, run_panel, save_png

PANEL_IMAGES = 8


def build_model(config: Config, device: torch.device | str = "cpu") -> TUSK:
    """A freshly initialised :class:`TUSK` (seeded by ``config.train.seed``)."""
    torch.manual_seed(config.train.seed)
    return TUSK(config.model).to(device)


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Config, TUSK, dict[str, Any]]:
    """The config, the trained model (eval mode) and the checkpoint of a run directory.

    Raises:
        CheckpointError: missing or unreadable checkpoint, or one whose config is invalid.
    """
    state = load_checkpoint(checkpoint_path(run_dir), map_location=device)
    try:
        config = config_from_dict(state["config"])
    except ValueError as err:
        raise CheckpointError(f"{checkpoint_path(run_dir)}: bad stored config ({err})") from None
    model = TUSK(config.model).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{checkpoint_path(run_dir)}: weights do not fit the stored config ({err})") from None
    model.eval()
    return config, model, state


class Trainer:
    """Trains a :class:`TUSK` model as configured, writing into ``run_dir``.

    Args:
        config: the run config (with ``resume`` the checkpoint's config is used instead, except
            for the keys in :data:`tusk.config_overrides.RESUMABLE_KEYS` (``train.steps``,
            ``train.device``, ``data.root``, bookkeeping), taken from ``config`` when given).
        run_dir: output directory (created). The trainer holds its lock
            (:mod:`~tusk.training.run_lock`) while it reads the checkpoint and while it runs, and
            refuses to run if another trainer wrote the checkpoint since it was created.
        resume: continue from ``run_dir/checkpoint.pt``.
        train_set, test_set: datasets to use instead of building the configured ones.
        progress: show a tqdm progress bar.
    """

    def __init__(self, config: Config | None, run_dir: str | os.PathLike, *, resume: bool = False,
                 train_set=None, test_set=None, progress: bool = True) -> None:
        self.run_dir = os.fspath(run_dir)
        self.step = 0
        state = None
        # What run() will find unchanged unless another trainer wrote the run meanwhile (taken
        # before the checkpoint is read: a write in between then counts as a change).
        self._seen_checkpoint = file_signature(checkpoint_path(self.run_dir))
        if resume:
            with hold_run_lock(self.run_dir):
                state = load_checkpoint(checkpoint_path(self.run_dir))
            stored = config_from_dict(state["config"])
            config = stored if config is None else carry_resumable(stored, config)
        if config is None:
            raise ValueError("a config is required unless resuming")
        config.validate()
        self.config = config
        self.device = torch.device(config.train.device)
        self.model = build_model(config, self.device)
        self.optimizer = torch.optim.Adam(
            list(self.model.encoder.parameters()) + list(self.model.decoder.parameters()), lr=config.train.lr)
        self.prototype_optimizer = torch.optim.Adam(
            [self.model.prototypes], lr=config.train.prototype_lr, betas=config.train.prototype_betas)
        if config.loss.reconstruction == "perceptual":
            self.reconstruction_loss = PerceptualLoss(config.loss.vgg_weights).to(self.device)
        else:
            self.reconstruction_loss = mse_loss
        self.train_set = train_set if train_set is not None else build_dataset(config.data, "train")
        self.test_set = test_set if test_set is not None else build_dataset(config.data, "test")
        self.progress = progress
        self.colours = prototype_colours(config.model.prototypes)
        self.elapsed = 0.0
        self.last_check: dict[str, float] = {}  # differences of the latest op check
        if state is not None:
            self._restore(state)
        self._writer = None

    # -- state --------------------------------------------------------------------------------

    def _restore(self, state: dict[str, Any]) -> None:
        where = checkpoint_path(self.run_dir)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.prototype_optimizer.load_state_dict(state["prototype_optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise CheckpointError(f"{where}: state does not fit the stored config ({err})") from None
        check_optimizer_fits(self.optimizer, "optimizer", where)
        check_optimizer_fits(self.prototype_optimizer, "prototype_optimizer", where)
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        restore_rng_states(state["rng"])

    def save(self) -> None:
        """Write ``checkpoint.pt`` atomically."""
        save_checkpoint(
            checkpoint_path(self.run_dir), step=self.step, config=self.config.to_dict(),
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            prototype_optimizer=self.prototype_optimizer.state_dict(),
            image_size=list(self.test_set[0]["image"].shape[-2:]), elapsed=self.elapsed,
        )
        self._seen_checkpoint = file_signature(checkpoint_path(self.run_dir))

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(os.path.join(self.run_dir, "tensorboard"))
        return self._writer

    # -- one step -----------------------------------------------------------------------------

    def train_step(self, step: int, images: torch.Tensor) -> dict[str, float]:
        """Network step then prototype steps on the batch ``images [B, 3, H, W]``."""
        cfg = self.config
        seed = cfg.train.seed
        tape = op_check.OpTape() if cfg.train.check_ops > 0 and step % cfg.train.check_ops == 0 else None
        self.model.train()
        pairs = make_pairs(images, cfg.loss.tps, cfg.loss.augment, step_generator(seed, step, "pairs"))
        with tape or contextlib.nullcontext():
            losses = network_losses(self.model, pairs, cfg.loss, self.reconstruction_loss)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()

        # Prototype steps. The network is fixed during them, so the descriptors of the updated
        # network are computed once (the official code re-runs the encoder in each of them).
        with torch.no_grad(), tape or contextlib.nullcontext():
            descriptors = self.model.encode_descriptors(losses.images)
        generator = step_generator(seed, step, "prototypes")
        sw = torch.zeros(())
        for i in range(cfg.train.sw_steps):
            with (tape if i == 0 else None) or contextlib.nullcontext():
                sw = prototype_loss(self.model, descriptors, cfg.loss, generator)
            self.prototype_optimizer.zero_grad(set_to_none=True)
            sw.backward()
            self.prototype_optimizer.step()

        out = losses.output
        scalars = {f"loss/{k}": v for k, v in losses.scalars().items()}
        scalars["loss/sw"] = float(sw.detach())
        valid = out.valid
        scalars["stats/valid_fraction"] = float(valid.float().mean())
        scalars["stats/score_mean"] = float(out.scores.detach()[valid].mean()) if valid.any() else 0.0
        scalars["stats/prototypes_used"] = float(out.labels.unique().numel())
        if tape is not None:
            self._report_check(step, tape)
        return scalars

    def _report_check(self, step: int, tape: op_check.OpTape) -> None:
        backend = ops._backend.resolve_backend("detect_keypoints", None, torch.empty(0, device=self.device))
        differences = tape.differences(None)
        self.last_check = differences
        for name, value in differences.items():
            self.writer.add_scalar(f"check_ops/{name}", value, step)
        name, value = op_check.worst(differences)
        self._message(f"op check at step {step} ({backend} vs reference, {len(tape.calls)} op calls): "
                      f"largest relative difference {value:.2e} ({name})")
        op_check.check(differences, self.config.train.check_ops_tolerance, step, backend)

    # -- the loop -----------------------------------------------------------------------------

    def _message(self, text: str) -> None:
        if self.progress:
            from tqdm import tqdm

            tqdm.write(text)

    def run(self) -> dict[str, Any]:
        """Train up to ``train.steps`` steps, save, and return (and write) the end-of-run metrics.

        Raises:
            RunLockError: another trainer holds the run directory, or wrote its checkpoint since
                this trainer was created.
        """
        with hold_run_lock(self.run_dir):
            where = checkpoint_path(self.run_dir)
            if file_signature(where) != self._seen_checkpoint:
                raise RunLockError(f"{where} changed since this trainer was created (another trainer wrote "
                                   "the run meanwhile); create the Trainer again to continue from it")
            for stale in remove_stale_temporaries(where):
                self._message(f"removed {stale}, left by a process killed while saving")
            return self._train()

    def _train(self) -> dict[str, Any]:
        from tqdm import tqdm

        cfg = self.config
        os.makedirs(os.path.join(self.run_dir, "images"), exist_ok=True)
        save_config(cfg, os.path.join(self.run_dir, "config.yaml"))
        panel_images = next(first_items(self.test_set, PANEL_IMAGES))["image"].to(self.device)
        with ops.use_backend(cfg.train.backend):
            loader = training_batches(self.train_set, cfg.train.batch_size, cfg.train.seed, self.step,
                                      cfg.train.steps, cfg.data.num_workers)
            bar = tqdm(total=cfg.train.steps, initial=self.step, desc=cfg.name, disable=not self.progress,
                       dynamic_ncols=True)
            try:
                for batch in loader:
                    started = time.perf_counter()
                    scalars = self.train_step(self.step, batch["image"].to(self.device))
                    self.elapsed += time.perf_counter() - started
                    self.step += 1
                    self._after_step(scalars, panel_images)
                    bar.update(1)
                    bar.set_postfix(recon=f"{scalars['loss/reconstruction']:.4f}", sw=f"{scalars['loss/sw']:.3f}")
            finally:
                bar.close()
            self.save()
            metrics = self.finish(panel_images)
        if self._writer is not None:
            self._writer.close()
        return metrics

    def _after_step(self, scalars: dict[str, float], panel_images: torch.Tensor) -> None:
        cfg = self.config.train
        last = self.step == cfg.steps
        if cfg.log_every and (self.step % cfg.log_every == 0 or last):
            for name, value in scalars.items():
                self.writer.add_scalar(name, value, self.step)
            self.writer.add_scalar("time/seconds_per_step", self.elapsed / max(self.step, 1), self.step)
        if cfg.image_every and self.step % cfg.image_every == 0 and not last:
            self.write_pictures(panel_images, os.path.join(self.run_dir, "images"), f"{self.step:07d}_")
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
            self.save()

    @torch.no_grad()
    def write_pictures(self, images: torch.Tensor, directory: str, prefix: str = "") -> None:
        """Detections/reconstructions/alpha panel and prototype renderings, as PNG files and
        TensorBoard images."""
        self.model.eval()
        out = self.model(images)
        panel = run_panel(images, out, self.colours)
        # Prototypes are rendered with the average detection score as splat weight.
        weight = float(out.scores[out.valid].mean()) if out.valid.any() else 1.0
        sheet = prototype_sheet(self.model.render_prototypes(tuple(images.shape[-2:]), weight=weight), self.colours)
        save_png(panel, os.path.join(directory, f"{prefix}detections.png"))
        save_png(sheet, os.path.join(directory, f"{prefix}prototypes.png"))
        self.writer.add_image("images/detections", panel, self.step, dataformats="HWC")
        self.writer.add_image("images/prototypes", sheet, self.step, dataformats="HWC")

    def finish(self, panel_images: torch.Tensor) -> dict[str, Any]:
        """End-of-run pictures and metrics (``metrics.json``)."""
        cfg = self.config
        self.write_pictures(panel_images, self.run_dir)
        metrics: dict[str, Any] = {"step": self.step, "train_seconds": round(self.elapsed, 2)}
        metrics.update(evaluate_run(self.model, cfg.data.dataset, self.test_set, cfg.train.eval_images, self.device))
        for name, value in {**metrics, **metrics.get("task", {})}.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"eval/{name}", value, self.step)
        with open(os.path.join(self.run_dir, "metrics.json"), "w", encoding="utf-8") as fh:
            json.dump(metrics, fh, indent=2, default=float)
        return metrics


def train(config: Config, run_dir: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """Shortcut for ``Trainer(config, run_dir, **kwargs).run()``."""
    return Trainer(config, run_dir, **kwargs).run()
