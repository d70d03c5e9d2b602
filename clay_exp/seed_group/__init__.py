"""Several seeds of one run trained in one process, as one batched model (``seeds_per_process``).

A study runs every arm at 5 seeds; each run's MAE is too small to feed a CPU core (width 64), so k
seeds trained together (their backbones stacked, `clay_exp.models.stacked`) take ~1.3x less CPU per
seed-step, and share one process's start-up, data rendering and validation batches
(docs/benchmarks.md, "Several seeds in one process"). Each seed is still an ordinary run:

* **its own folder and record**: ``<job folder>/seed-<seed>/`` with ``results.json`` (its config is
  the single run's, ``seed`` set), ``csv/metrics.csv``, its wandb run, ``.hydra/`` and checkpoints;
  the job folder holds ``seed_group.json`` (the seeds and their folders). The report, `load_runs`
  and wandb see k runs.
* **its own numbers**: the seed's modules are built exactly as its single run builds them (seeded,
  in the same order), its training order is its own (`EpochShuffleSampler` of its seed), its masks
  come from its own copy of the global random stream, advanced as its single run advances it (one
  int64 for each DataLoader iterator: one a training epoch, one per validation set a validation),
  and its optimizer, schedule and gradient clipping are its own. Only the backbone's arithmetic is
  batched, so a seed's losses equal its single run's up to float rounding (a batched product sums in
  another order), which training carries forward as `speed=fast` does: the same run within the
  seeds' paired interval. ``tests/test_seed_group.py`` checks a group against single runs.
* **its own end**: after the group's training each seed is validated on its own Trainer with the
  run's callbacks (the final metrics, `LocationReliance`), as `clay_exp.train.train` does.

What a group does not do (refused with the reason, before anything is written): an injection other
than ``add``, ``compile=true``, an accelerator other than the CPU, several devices, gradient
accumulation, clipping by value, data that depends on the seed beyond the training order. A group's
seed cannot be resumed (`resume=` refuses it, naming the group); a non-finite loss in one seed fails
the group, every seed recorded ``failed`` with the seed named.
"""

from clay_exp.seed_group.module import OptimizerGroup, SeedGroupData, SeedGroupModule, SeedRouter
from clay_exp.seed_group.run import SEED_GROUP_FILE, group_seeds, seed_folder, train_seed_group

__all__ = [
    "SEED_GROUP_FILE",
    "OptimizerGroup",
    "SeedGroupData",
    "SeedGroupModule",
    "SeedRouter",
    "group_seeds",
    "seed_folder",
    "train_seed_group",
]
