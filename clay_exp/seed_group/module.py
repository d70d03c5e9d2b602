"""The seed group's Lightning pieces: k seeds' modules trained as one (`SeedGroupModule`), their
optimizers stepped as one (`OptimizerGroup`), their data as one (`SeedGroupData`), each seed's
metrics routed to its own loggers (`SeedRouter`). What they guarantee: the package docstring."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import CombinedLoader, rank_zero_only
from torch import Tensor, nn

from clay_exp.models.stacked import backbone_parameters, check_stackable, stacked_losses
from clay_exp.module import VAL_MASK_SEED, MAELightningModule, NonFiniteLossError
from clay_exp.resume import AtomicCheckpointIO


class OptimizerGroup(torch.optim.Optimizer):
    """k seeds' own optimizers as the one optimizer Lightning steps (one global step per batch):
    each seed's gradients clipped over its own parameters (as Lightning clips a single run's), then
    its optimizer stepped."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer], clip_norm: float | None) -> None:
        self.optimizers = list(optimizers)
        self.clip_norm = float(clip_norm) if clip_norm else None
        params = [p for o in self.optimizers for g in o.param_groups for p in g["params"]]
        super().__init__(params, {})
        self.param_groups = [g for o in self.optimizers for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for optimizer in self.optimizers:
            if self.clip_norm:
                own = [p for g in optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(own, self.clip_norm)
            optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            optimizer.load_state_dict(state)


def lr_names(optimizer: torch.optim.Optimizer) -> list[str]:
    """`LearningRateMonitor`'s names for an optimizer's groups (``lr-AdamW/<group name>``)."""
    base = "lr-" + type(optimizer).__name__
    groups = optimizer.param_groups
    if len(groups) == 1:
        return [base]
    return [f"{base}/{g.get('name', f'pg{i + 1}')}" for i, g in enumerate(groups)]


class SeedRouter(Logger):
    """The group Trainer's one logger: ``seed<s>/<key>`` goes to seed s's own loggers as ``<key>``
    (with the keys no seed owns, e.g. ``epoch``)."""

    def __init__(self, seeds: Sequence[int], loggers: Sequence[Sequence[Logger]]) -> None:
        super().__init__()
        self.prefixes = [seed_prefix(s) for s in seeds]
        self.loggers = [list(lg) for lg in loggers]

    @property
    def name(self) -> str:
        return "seed_group"

    @property
    def version(self) -> int:
        return 0

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """Each seed's loggers hold its own config already (`RunSession.make_loggers`)."""

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        shared = {k: v for k, v in metrics.items() if not k.startswith(tuple(self.prefixes))}
        for prefix, loggers in zip(self.prefixes, self.loggers, strict=True):
            own = {k[len(prefix) :]: v for k, v in metrics.items() if k.startswith(prefix)}
            if own:
                for logger in loggers:
                    logger.log_metrics({**own, **shared}, step)

    @rank_zero_only
    def save(self) -> None:
        for loggers in self.loggers:
            for logger in loggers:
                logger.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        for loggers in self.loggers:
            for logger in loggers:
                logger.finalize(status)


def seed_prefix(seed: int) -> str:
    return f"seed{seed}/"


class SeedGroupData(L.LightningDataModule):
    """The seeds' datamodules as one: each training step a list of k batches (seed i's from its own
    loader and order), the validation sets of the first (the seeds share them: `check_group`)."""

    def __init__(self, datamodules: Sequence[L.LightningDataModule]) -> None:
        super().__init__()
        self.datamodules = list(datamodules)

    def setup(self, stage: str | None = None) -> None:
        for dm in self.datamodules:
            dm.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        return CombinedLoader([dm.train_dataloader() for dm in self.datamodules], mode="min_size")

    def val_dataloader(self) -> Any:
        return self.datamodules[0].val_dataloader()


class SeedGroupModule(L.LightningModule):
    """Trains k `MAELightningModule`s (one per seed) with their backbones stacked; logs each seed's
    metrics under ``seed<s>/`` (`SeedRouter` hands them to its own loggers) and writes its best
    checkpoint into its own folder."""

    def __init__(
        self,
        members: Sequence[MAELightningModule],
        seeds: Sequence[int],
        rng_states: Sequence[Tensor],
        checkpoint_dirs: Sequence[Path],
        gradient_clip_val: float | None = None,
        diagnostics_every: int | None = None,
    ) -> None:
        super().__init__()
        check_stackable([m.model for m in members])
        self.members = nn.ModuleList(members)
        # the same Parameter objects all along (the optimizers update them in place): looked up once
        self.backbones = [backbone_parameters(m.model) for m in members]
        self.seeds = list(seeds)
        self.rng_states = [s.clone() for s in rng_states]
        self.checkpoint_dirs = [Path(d) for d in checkpoint_dirs]
        self.best_paths: list[Path | None] = [None] * len(members)
        self.gradient_clip_val = gradient_clip_val
        self.diagnostics_every = diagnostics_every
        self.schedulers: list[Any] = []
        self.automatic_optimization = False

    # -- each seed's random stream --------------------------------------------------------------
    @contextmanager
    def random_stream(self, index: int) -> Iterator[None]:
        """Seed `index`'s copy of the global torch RNG, as its single run's would be, in use inside."""
        saved = torch.get_rng_state()
        torch.set_rng_state(self.rng_states[index])
        try:
            yield
        finally:
            self.rng_states[index] = torch.get_rng_state()
            torch.set_rng_state(saved)

    def _iterator_draws(self, count: int) -> None:
        """What creating `count` DataLoader iterators takes from each seed's stream (a base seed)."""
        for i in range(len(self.members)):
            with self.random_stream(i):
                for _ in range(count):
                    torch.empty((), dtype=torch.int64).random_()

    # -- training -------------------------------------------------------------------------------
    def configure_optimizers(self) -> OptimizerGroup:
        total = int(self.trainer.estimated_stepping_batches)
        pairs = [m.make_optimizer(total) for m in self.members]
        self.schedulers = [s for _, s in pairs if s is not None]
        return OptimizerGroup([o for o, _ in pairs], self.gradient_clip_val)

    def on_train_epoch_start(self) -> None:
        self._iterator_draws(1)  # the single run's training iterator of this epoch

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking and self.trainer.state.fn == TrainerFn.FITTING:
            loaders = self.trainer.val_dataloaders
            self._iterator_draws(len(loaders) if isinstance(loaders, list | tuple) else 1)

    def _conditions(
        self, batches: Sequence[dict[str, Any]], generators: Sequence[torch.Generator] | None
    ) -> tuple[list[Any], list[Tensor]]:
        """Each seed's injection condition and masking noise, in its single run's order of draws."""
        conds, noises = [], []
        for i, (member, batch) in enumerate(zip(self.members, batches, strict=True)):
            generator = None if generators is None else generators[i]
            with self.random_stream(i):  # also in validation: a draw there is one its single run makes
                batch, known = member.known_locations(batch)
                location = member.encoding(batch) if member.encoding.out_dim > 0 else None
                b = batch["image"].shape[0]
                conds.append(member.model.condition(location, b, batch.get("time"), generator, known))
                n = member.model.num_patches
                noises.append(torch.rand(b, n, device=batch["image"].device, generator=generator))
        return conds, noises

    def training_step(self, batch: list[dict[str, Any]], batch_idx: int) -> Tensor:
        conds, noises = self._conditions(batch, None)
        images = [b["image"] for b in batch]
        losses = stacked_losses([m.model for m in self.members], images, conds, noises, self.backbones)
        finite = torch.isfinite(losses.detach())
        if not bool(finite.all()):
            bad = {
                s: float(v) for s, v, ok in zip(self.seeds, losses.detach(), finite, strict=True) if not ok
            }
            raise NonFiniteLossError(
                f"non-finite training loss of seed(s) {bad} at step {self.global_step} (batch {batch_idx} of "
                f"epoch {self.current_epoch}): check the data for NaN/inf pixels and the learning rate"
            )
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(losses.sum())
        optimizer.step()
        for scheduler in self.schedulers:
            scheduler.step()
        bs = batch[0]["image"].shape[0]
        for i, (member, loss) in enumerate(zip(self.members, losses.detach(), strict=True)):
            member.train_loss.update(loss)
            key = seed_prefix(self.seeds[i]) + "train/loss"
            self.log(key, loss, on_step=True, on_epoch=False, prog_bar=i == 0, batch_size=bs)
        return losses.detach().mean()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        """Each seed's learning rates, when and as a single run's `LearningRateMonitor` logs them
        (it reads the same private counters: Lightning has no public ones)."""
        connector = self.trainer._logger_connector
        if not connector.should_update_logs or not self.trainer.loggers:
            return
        step = self.trainer.fit_loop.epoch_loop._batches_that_stepped  # as LearningRateMonitor logs
        group = self.optimizers().optimizer
        metrics = {}
        for seed, optimizer in zip(self.seeds, group.optimizers, strict=True):
            for name, g in zip(lr_names(optimizer), optimizer.param_groups, strict=True):
                metrics[seed_prefix(seed) + name] = g["lr"]
        for logger in self.trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = self.diagnostics_every
        step = self.trainer.global_step
        if not n or step % n or not self.trainer.loggers:
            return
        metrics = {}
        for seed, member in zip(self.seeds, self.members, strict=True):
            stats = member.encoding.diagnostics()
            metrics |= {f"{seed_prefix(seed)}enc/{key}": value for key, value in stats.items()}
        if metrics:  # the step of this batch's own logged values (EncodingDiagnostics does the same)
            for logger in self.trainer.loggers:
                logger.log_metrics(metrics, step=step - 1)

    def on_train_epoch_end(self) -> None:
        for seed, member in zip(self.seeds, self.members, strict=True):
            self.log(seed_prefix(seed) + "train/loss_epoch", member.train_loss.compute())
            member.train_loss.reset()

    # -- validation: one batch, every seed ------------------------------------------------------
    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        names = self.members[0].val_set_names
        if dataloader_idx >= len(names):
            raise ValueError(
                f"validation dataloader {dataloader_idx} has no name: model.val_sets={names} names "
                f"{len(names)} sets; name every set the datamodule serves, in its order"
            )
        k = len(self.members)
        generators = [
            torch.Generator(device=self.device).manual_seed(VAL_MASK_SEED + batch_idx) for _ in range(k)
        ]
        conds, noises = self._conditions([batch] * k, generators)
        images = [batch["image"]] * k
        losses = stacked_losses([m.model for m in self.members], images, conds, noises, self.backbones)
        for member, loss in zip(self.members, losses, strict=True):
            member.val_losses[names[dataloader_idx]].update(loss, weight=batch["image"].shape[0])

    def on_validation_epoch_end(self) -> None:
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        for i, (seed, member) in enumerate(zip(self.seeds, self.members, strict=True)):
            before = dict(member.losses_at_best)
            metrics = member.close_validation_epoch(self.trainer.sanity_checking, fitting)
            for key, value in metrics.items():
                prog = i == 0 and key.endswith("/loss")
                self.log(seed_prefix(seed) + key, value, prog_bar=prog, sync_dist=True, logger=fitting)
            if fitting and metrics and member.losses_at_best != before:
                self._save_best(i)

    # -- each seed's checkpoints ----------------------------------------------------------------
    def member_checkpoint(self, index: int) -> dict[str, Any]:
        """Seed `index`'s weights, optimizer and schedule in a Lightning checkpoint's keys (what
        `load_from_checkpoint`, the probe and `read_checkpoint` read)."""
        member = self.members[index]
        group = self.optimizers().optimizer if self._trainer is not None else None
        state: dict[str, Any] = {
            "epoch": self.current_epoch,
            "global_step": self.global_step,
            "pytorch-lightning_version": L.__version__,
            "state_dict": member.state_dict(),
            "hyper_parameters": dict(member.hparams),
            "losses_at_best": dict(member.losses_at_best),
            "seed_group": {"seeds": self.seeds, "seed": self.seeds[index]},
        }
        if group is not None:
            state["optimizer_states"] = [group.optimizers[index].state_dict()]
            if self.schedulers:
                state["lr_schedulers"] = [self.schedulers[index].state_dict()]
        return state

    def save_member(self, index: int, path: Path) -> Path:
        AtomicCheckpointIO().save_checkpoint(self.member_checkpoint(index), path)
        return path

    def _save_best(self, index: int) -> None:
        name = f"best-epoch{self.current_epoch:03d}-step{self.global_step:06d}.ckpt"
        path = self.save_member(index, self.checkpoint_dirs[index] / name)
        previous = self.best_paths[index]
        if previous is not None and previous != path and previous.exists():
            previous.unlink()
        self.best_paths[index] = path
