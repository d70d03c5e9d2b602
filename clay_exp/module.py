"""The LightningModule: encoding -> MAE -> masked reconstruction loss -> logs.

Data flows one way: the batch dict gives the encoding its coordinates, the encoding gives the MAE a
``(B, out_dim)`` vector, the MAE returns the loss. The optimizer's parameter groups come from the
backbone (decay / no decay) and from the encoding (which may ask for its own learning-rate scales,
e.g. per-level rates of the hierarchical tile embeddings).

Batch keys: ``image`` ``(B, C, H, W)``, whatever the encoding reads (``lat``, ``lon`` in degrees, ...),
and optionally ``time``: a float ``(B, 4)`` tensor ``[sin w, cos w, sin h, cos h]`` with
``w = 2π · isoweek / 52`` and ``h = 2π · hour / 24`` (Clay v1's time features,
`clay_exp.data.time.clay_v1_time`), passed to the MAE as is; ``injection=clay_v1`` packs it
next to the location, the other injections ignore it, and without it those 4 dims are zeros.

A chip's location may be missing: ``location_known`` (optional, bool ``(B,)``) marks the chips whose
location is known, and with ``missing_location=allow`` a NaN ``lat`` or ``lon`` marks one too
(otherwise a NaN coordinate is an error, as it always was). Encodings never see a missing
coordinate: such chips get a dummy place (0°, 0°) before the encoding, and the MAE's injection
then takes its ``missing`` path for them (`clay_exp.models.injection`), so whatever the encoding
made of the dummy place is not used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor, nn
from torchmetrics import MeanMetric

from clay_exp.encodings.base import SpatialEncoding
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.optim import WarmupCosine, build_optimizer

SCHEDULER_CHOICES = ("cosine", "constant")
#: ``model.missing_location``: a NaN coordinate is an error, or marks the chip's location as missing.
MISSING_LOCATION_CHOICES = ("error", "allow")
#: The optional batch key: bool ``(B,)``, True where the chip's location is known.
LOCATION_KNOWN = "location_known"
#: The sets that may come first in ``val_sets`` and select the best model: the reported ``val``, or
#: ``tune`` in a tuning trial (stage=tune), which never sees a reported chip.
SELECTING_SETS = ("val", "tune")
#: Seed of the validation masks: every run and epoch masks the same patches of the same val chips.
VAL_MASK_SEED = 12345


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite: nothing after it means anything, so the run stops and fails."""


def count_parameters(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)


class MAELightningModule(L.LightningModule):
    """Trains a `MaskedAutoencoderViT` with one spatial encoding.

    Args:
        encoding: the spatial encoding (any `SpatialEncoding`).
        backbone: a callable (Hydra ``_partial_``) that builds the MAE given ``location_dim``.
        optimizer: a callable (Hydra ``_partial_``) taking parameter groups, e.g. ``torch.optim.AdamW``;
            its ``lr`` is the base learning rate that groups' ``lr_scale`` multiplies.
        scheduler: ``cosine`` (linear warm-up then cosine decay to ``min_lr_ratio``) or ``constant``.
        warmup_fraction: share of the total steps spent warming up (cosine only).
        min_lr_ratio: final learning rate as a fraction of the base rate (cosine only).
        val_sets: the names of the validation dataloaders, in order (``model.val_sets``): the loss
            of dataloader ``i`` is logged as ``<val_sets[i]>/loss``. The first must be ``val`` (it
            selects the best model), or ``tune`` in a tuning trial (stage=tune); a set the data
            does not serve (``val_heldout`` under ``data.split=random``) is simply never logged.
            The names come in through the config, not from the datamodule: nothing here reads back
            up the data flow.
        missing_location: ``error`` (a NaN ``lat``/``lon`` stops the run, the default) or ``allow``
            (a chip with a NaN coordinate has no location: the injection's ``missing`` path).
        fused_optimizer: give every parameter group that names no kernel the optimizer's fused
            kernel (``speed.fused_optimizer``, clay_exp.speed): ~3x faster steps on a CPU, equal to
            the default loop up to float rounding.
    """

    def __init__(
        self,
        encoding: SpatialEncoding,
        backbone: Callable[..., MaskedAutoencoderViT],
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: str = "cosine",
        warmup_fraction: float = 0.05,
        min_lr_ratio: float = 0.01,
        val_sets: Sequence[str] = ("val", "val_heldout"),
        missing_location: str = "error",
        fused_optimizer: bool = False,
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULER_CHOICES:
            raise ValueError(f"model.scheduler={scheduler!r} is not one of {list(SCHEDULER_CHOICES)}")
        if missing_location not in MISSING_LOCATION_CHOICES:
            raise ValueError(
                f"model.missing_location={missing_location!r} is not one of {list(MISSING_LOCATION_CHOICES)}"
            )
        self.missing_location = missing_location
        val_sets = [str(name) for name in val_sets]
        if not val_sets or val_sets[0] not in SELECTING_SETS or len(set(val_sets)) != len(val_sets):
            raise ValueError(
                f"model.val_sets={val_sets} must name distinct validation sets, the first one of "
                f"{list(SELECTING_SETS)} (it selects the best model)"
            )
        self.save_hyperparameters(logger=False, ignore=["encoding", "backbone", "optimizer"])
        self.encoding = encoding
        self.model = backbone(location_dim=encoding.out_dim, location_is_clay_latlon=encoding.clay_v1_latlon)
        self.optimizer_factory = optimizer
        self.train_loss = MeanMetric()
        # One loss per validation set, named by dataloader index; only the sets served are logged.
        self.val_set_names = val_sets
        self.val_losses = nn.ModuleDict({name: MeanMetric() for name in val_sets})
        # Every set's loss at the epoch of the best `val/loss` (model selection never sees held-out sets).
        self.losses_at_best: dict[str, float] = {}

    # -- the step -----------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> Tensor:
        batch, known = self.known_locations(batch)
        location = self.encoding(batch) if self.encoding.out_dim > 0 else None
        return self.model(
            batch["image"], location, generator=generator, time=batch.get("time"), location_known=known
        ).loss

    def known_locations(self, batch: dict[str, Any]) -> tuple[dict[str, Any], Tensor | None]:
        """The batch with a dummy place (0°, 0°) where a chip's location is missing, and the chips
        whose location is known (None: all; the plain path, nothing computed)."""
        known = batch.get(LOCATION_KNOWN)
        if self.missing_location == "allow" and "lat" in batch and "lon" in batch:
            finite = torch.isfinite(batch["lat"]) & torch.isfinite(batch["lon"])
            known = finite if known is None else known.bool() & finite
        if known is None:
            return batch, None
        known = known.bool()
        dummy = {
            k: torch.where(known, v, torch.zeros_like(v))
            for k in ("lat", "lon")
            if (v := batch.get(k)) is not None
        }
        return {**batch, **dummy}, known

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss = self(batch)
        if not bool(torch.isfinite(loss)):  # one host sync a step: cheap next to a wasted run
            raise NonFiniteLossError(
                f"non-finite training loss ({float(loss)}) at step {self.global_step} (batch {batch_idx} of "
                f"epoch {self.current_epoch}): check the data for NaN/inf pixels and the learning rate"
            )
        self.train_loss.update(loss.detach())  # not forward(): that also computes a batch value, unused
        bs = batch["image"].shape[0]
        self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=bs)
        return loss

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute())
        self.train_loss.reset()

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx >= len(self.val_set_names):
            raise ValueError(
                f"validation dataloader {dataloader_idx} has no name: model.val_sets={self.val_set_names} "
                f"names {len(self.val_set_names)} sets; name every set the datamodule serves, in its order"
            )
        g = torch.Generator(device=self.device).manual_seed(VAL_MASK_SEED + batch_idx)
        loss = self(batch, generator=g)
        self.val_losses[self.val_set_names[dataloader_idx]].update(loss, weight=batch["image"].shape[0])

    def on_validation_epoch_end(self) -> None:
        to_logger = self.trainer.state.fn == TrainerFn.FITTING
        for key, value in self.close_validation_epoch(self.trainer.sanity_checking, to_logger).items():
            self.log(key, value, prog_bar=key.endswith("/loss"), sync_dist=True, logger=to_logger)

    def close_validation_epoch(self, sanity_checking: bool, fitting: bool) -> dict[str, Tensor | float]:
        """Every validation set's loss this epoch and at the best epoch so far (``<set>/loss``,
        ``<set>/loss_best``), the metrics reset; the best epoch moves only while `fitting` (a
        standalone `trainer.validate` after fit reports the final numbers, it selects nothing).
        Empty in the sanity check, or when the selecting set was not served."""
        # The sets the data served this epoch (a datamodule with split=random serves `val` only).
        losses = {name: metric.compute() for name, metric in self.val_losses.items() if metric.update_called}
        for metric in self.val_losses.values():
            metric.reset()
        selector = self.val_set_names[0]  # `val`, or `tune` in a tuning trial
        if sanity_checking or selector not in losses:
            return {}
        if fitting and float(losses[selector]) < self.losses_at_best.get(selector, math.inf):
            self.losses_at_best = {name: float(loss) for name, loss in losses.items()}
        out: dict[str, Tensor | float] = {}
        for name, loss in losses.items():
            out[f"{name}/loss"] = loss
            if name in self.losses_at_best:
                out[f"{name}/loss_best"] = self.losses_at_best[name]
        return out

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["losses_at_best"] = self.losses_at_best  # so a resumed run keeps its best epoch

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.losses_at_best = dict(checkpoint.get("losses_at_best", {}))

    # -- optimisation -------------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """Backbone groups (weight decay on matrices only) + the encoding's own groups."""
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim < 2 or "token" in name else decay).append(p)
        groups: list[dict[str, Any]] = [
            {"name": "backbone", "params": decay},
            {"name": "backbone_no_decay", "params": no_decay, "weight_decay": 0.0},
        ]
        groups += self.encoding.param_groups()
        if self.hparams.get("fused_optimizer"):
            groups = [g if "fused" in g or "foreach" in g else {**g, "fused": True} for g in groups]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> dict[str, Any]:
        constant = self.hparams.scheduler == "constant"  # needs no step count (nor a Trainer)
        optimizer, scheduler = self.make_optimizer(
            1 if constant else int(self.trainer.estimated_stepping_batches)
        )
        if scheduler is None:
            return {"optimizer": optimizer}
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def make_optimizer(
        self, total_steps: int
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR | None]:
        """The optimizer (each group's lr_scale applied; encodings that act on, or watch, the update
        hook its steps) and its per-step schedule over `total_steps` (None: ``constant``)."""
        optimizer = build_optimizer(self.optimizer_factory, self.param_groups(), self.encoding)
        if self.hparams.scheduler == "constant":
            return optimizer, None
        total = max(1, int(total_steps))
        # A resumed run replaces total/warmup by the checkpoint's (WarmupCosine): its own schedule.
        factor = WarmupCosine(total, int(self.hparams.warmup_fraction * total), self.hparams.min_lr_ratio)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    # -- facts for results.json ---------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Backbone vs encoding parameters; the location projection counts with the encoding."""
        location = self.model.location_parameters()
        location_ids = {id(p) for p in location}
        backbone = [p for p in self.model.parameters() if id(p) not in location_ids]
        return {
            "backbone": count_parameters(backbone),
            "encoding": count_parameters(self.encoding.parameters()) + count_parameters(location),
            "encoding_trainable": count_parameters(p for p in self.encoding.parameters() if p.requires_grad)
            + count_parameters(location),
        }
