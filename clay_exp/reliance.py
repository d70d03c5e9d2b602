"""How much a trained model leans on its location: a better model, or a shortcut? (issue 20).

A location encoding can lower the masked-reconstruction loss by letting the MAE look up the answer
for a place instead of reading the visible pixels. At the end of training (the final
``trainer.validate``; also every ``every_n_epochs`` validation epochs when asked) `LocationReliance`
scores every validation set again with the same weights, on the same chips and the same masked
patches as its ``<set>/loss`` (the module's seeded validation masks), with the location changed:

==============================  ===================================  ===========================
metric                          the location                         masking
==============================  ===================================  ===========================
``<set>/loss`` (logged already)  as given                             the run's
``<set>/loss_shuffled``         another chip's, of the same set       the run's
``<set>/loss_missing``          none: the injection's ``missing``     the run's
                                path (`clay_exp.models.injection`)
``<set>/loss_prior``            as given                             100 %: no visible patch
``<set>/loss_prior_shuffled``   shuffled                             100 %
``<set>/loss_prior_missing``    none                                 100 %
``<set>/reliance``              ``loss_shuffled − loss``: what a wrong place costs
==============================  ===================================  ===========================

**Shuffled** is a derangement of the set's places (`place_derangement`, seeded): no chip keeps its
own location when the set has more than one distinct place and none holds more than half its
chips. Every batch key the encoding reads moves with the place (``lat``/``lon``, the oracle's
``latents``), and so does ``location_known``. **100 % masking** leaves the decoder the mask tokens,
the positions and whatever location reaches it: a location prior (`none` can only predict the
mean). Under ``injection=add`` or ``film`` the location acts on patch tokens only, so with no
visible patch it cannot reach the prediction: their prior is the no-location prior by construction
(``token`` and ``clay_v1`` carry it to the decoder).

The numbers go where ``<set>/loss`` goes: the loggers (metrics.csv, wandb) at the final step, the
callback metrics, and from there ``results.json``'s ``final`` (`clay_exp.train`). The report turns
them into reliance, robustness (``loss_missing`` − the ``none`` arm's loss) and prior columns
(`clay_exp.report.reliance`); docs/reliance.md says what each means.

Cost: five more passes over the validation sets (two at the run's masking, three at 100 %, whose
encoder sees no patch) and one to recompute the given loss the reliance subtracts; the batches are
the ones the validation loop just served, kept in memory (no second pass over the data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor

from clay_exp.module import LOCATION_KNOWN, VAL_MASK_SEED

log = logging.getLogger(__name__)

#: metric suffix -> (what the location is, mask ratio: None = the run's own)
ARMS: dict[str, tuple[str, float | None]] = {
    "loss": ("given", None),
    "loss_shuffled": ("shuffled", None),
    "loss_missing": ("missing", None),
    "loss_prior": ("given", 1.0),
    "loss_prior_shuffled": ("shuffled", 1.0),
    "loss_prior_missing": ("missing", 1.0),
}
#: The arms at 100 % masking (left out with ``prior=False``).
PRIOR_ARMS = tuple(k for k, (_, ratio) in ARMS.items() if ratio == 1.0)
#: ``<set>/reliance`` = ``<set>/loss_shuffled`` − ``<set>/loss``.
RELIANCE = "reliance"
#: The seconds an evaluation took, logged beside it (metrics.csv, wandb).
TIME_KEY = "time/reliance_s"


def place_derangement(places: Tensor, seed: int = 0) -> tuple[Tensor, int]:
    """A seeded permutation ``perm`` of the ``N`` chips whose rows of `places` ``(N, k)`` name their
    place: chip ``i`` takes the place of chip ``perm[i]``. Returns ``(perm, kept)``, ``kept`` the
    chips whose new place equals their own: 0 whenever no place holds more than half the chips.

    The chips are laid out place by place (places and chips within a place in a random order) and
    each takes the place of the chip ``m`` positions further on (cyclically), ``m`` the largest
    number of chips at one place: a place's block is at most ``m`` long, so the chip ``m`` on lies in
    another block, unless ``m > N/2`` (then some chips must keep their place).
    """
    n = len(places)
    if n < 2:
        return torch.arange(n), n
    rows = torch.nan_to_num(places.detach().double().cpu().reshape(n, -1), nan=1e300)
    _, place = torch.unique(rows, dim=0, return_inverse=True)
    g = torch.Generator().manual_seed(int(seed))
    place_rank = torch.randperm(int(place.max()) + 1, generator=g)[place]
    order = torch.argsort(place_rank * n + torch.randperm(n, generator=g))
    m = int(torch.bincount(place).max())
    perm = torch.empty(n, dtype=torch.int64)
    perm[order] = order.roll(-m)
    return perm, int((place[perm] == place).sum())


def location_keys(module: L.LightningModule, batch: Mapping[str, Any]) -> list[str]:
    """The batch keys that make a chip's location: what the encoding reads, and ``location_known``."""
    inputs = [*getattr(module.encoding, "inputs", ("lat", "lon")), LOCATION_KNOWN]
    return [k for k in dict.fromkeys(inputs) if isinstance(batch.get(k), Tensor)]


@contextmanager
def _masking(module: L.LightningModule, ratio: float | None) -> Iterator[None]:
    model = getattr(module.model, "_orig_mod", module.model)  # under torch.compile, the model itself
    with nullcontext() if ratio is None else model.masking(ratio):
        yield


@torch.no_grad()
def location_reliance(
    module: L.LightningModule,
    sets: Mapping[str, Sequence[tuple[int, Mapping[str, Any]]]],
    seed: int = 0,
    prior: bool = True,
) -> dict[str, float]:
    """Every arm of `ARMS` on each set's ``(batch_idx, batch)`` list (the validation loop's
    batches: the mask generator of batch ``i`` is seeded ``VAL_MASK_SEED + i``, as in
    ``validation_step``) plus ``<set>/reliance``; ``<set>/loss`` is the given loss recomputed (equal
    to the module's ``<set>/loss``). Means over chips (batches weighted by their size)."""
    arms = {k: v for k, v in ARMS.items() if prior or k not in PRIOR_ARMS}
    was_training = module.training
    module.eval()
    out: dict[str, float] = {}
    try:
        for name, batches in sets.items():
            if not batches:
                continue
            keys = location_keys(module, batches[0][1])
            pooled = {k: torch.cat([b[k] for _, b in batches]) for k in keys}
            coordinates = [
                pooled[k].reshape(len(pooled[k]), -1).double() for k in keys if k != LOCATION_KNOWN
            ]
            places = torch.cat(coordinates, dim=1)
            perm, kept = place_derangement(places, seed)
            if kept:
                log.warning("%s: %d of %d chips keep their place when shuffled (one place holds most chips)",
                            name, kept, len(perm))  # fmt: skip
            sums = dict.fromkeys(arms, 0.0)
            start = count = 0
            for batch_idx, batch in batches:
                n, device = batch["image"].shape[0], batch["image"].device
                take = perm[start : start + n].to(device)
                location = {
                    "given": batch,
                    "shuffled": {**batch, **{k: v[take] for k, v in pooled.items()}},
                    "missing": {**batch, LOCATION_KNOWN: torch.zeros(n, dtype=torch.bool, device=device)},
                }
                for arm, (where, ratio) in arms.items():
                    g = torch.Generator(device=module.device).manual_seed(VAL_MASK_SEED + batch_idx)
                    with _masking(module, ratio):
                        sums[arm] += float(module(location[where], generator=g)) * n
                start, count = start + n, count + n
            out |= {f"{name}/{arm}": total / count for arm, total in sums.items()}
            out[f"{name}/{RELIANCE}"] = out[f"{name}/loss_shuffled"] - out[f"{name}/loss"]
    finally:
        module.train(was_training)
    return out


class LocationReliance(Callback):
    """Logs `location_reliance` of every validation set at the final validation (``final``) and, during
    training, every `every_n_epochs` validation epochs (0: never). The given loss is not logged again
    (the module logs ``<set>/loss``); a step already logged during training is not logged twice.

    Args:
        every_n_epochs: also during training, after every n-th validation epoch (0: only at the end).
        prior: also the three arms at 100 % masking.
        seed: the seed of the shuffle (the same derangement for every arm of a study).
        final: at the final ``trainer.validate`` (what ``results.json`` records).
    """

    def __init__(
        self, every_n_epochs: int = 0, prior: bool = True, seed: int = 0, final: bool = True
    ) -> None:
        if int(every_n_epochs) != every_n_epochs or every_n_epochs < 0:
            raise ValueError(
                f"every_n_epochs={every_n_epochs!r} must be an integer >= 0 (0: at the end only)"
            )
        self.every_n_epochs, self.prior, self.seed, self.final = int(every_n_epochs), prior, int(seed), final
        self._batches: dict[int, list[tuple[int, Any]]] = {}
        self._collect = False
        self._logged_step: int | None = None

    def _wanted(self, trainer: L.Trainer) -> bool:
        if trainer.sanity_checking:
            return False
        if trainer.state.fn == TrainerFn.VALIDATING:
            return self.final
        n = self.every_n_epochs
        return trainer.state.fn == TrainerFn.FITTING and n > 0 and (trainer.current_epoch + 1) % n == 0

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._batches, self._collect = {}, self._wanted(trainer)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._collect:
            self._batches.setdefault(dataloader_idx, []).append((batch_idx, batch))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._collect or not self._batches:
            return
        names = list(getattr(pl_module, "val_set_names", []))
        sets = {names[i] if i < len(names) else f"val{i}": b for i, b in sorted(self._batches.items())}
        self._batches, self._collect = {}, False
        started = time.perf_counter()
        metrics = location_reliance(pl_module, sets, self.seed, self.prior)
        seconds = time.perf_counter() - started
        log.info("location reliance of %s: %.1f s", list(sets), seconds)
        to_logger = self._logged_step != trainer.global_step
        self._logged_step = trainer.global_step
        for key, value in metrics.items():
            if key.rsplit("/", 1)[-1] != "loss":  # the module logs the given loss itself
                pl_module.log(key, value, sync_dist=True, logger=to_logger)
        # what the evaluation cost (scripts/benchmark_reliance.py); not a val metric, so not in `final`
        pl_module.log(TIME_KEY, seconds, sync_dist=True, logger=to_logger)
