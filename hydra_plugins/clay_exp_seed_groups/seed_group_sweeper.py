"""Hydra's basic sweeper, with the seeds of each setting grouped ``seeds_per_process`` to a job.

``python train.py -m experiment=study_known_answer seeds_per_process=5`` sweeps the same settings
as without it, but instead of one job per (setting, seed) it launches one job per setting and group
of up to 5 seeds: ``seed=<first> seed_group=[<seeds>]``, which `clay_exp.seed_group` trains as one
batched model, each seed still its own run folder. ``seeds_per_process=1`` (the default) is Hydra's
basic sweeper exactly. Kept free of clay_exp imports: Hydra imports every plugin module at start.
"""

from __future__ import annotations

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.types import Override

#: The override a job's seed comes in by (configs/train.yaml: ``seed``) and the one a group's do.
SEED_KEY = "seed"
GROUP_KEY = "seed_group"


def group_jobs(jobs: list[list[str]], seeds_per_process: int) -> list[list[str]]:
    """Jobs (lists of ``key=value``) that differ only in ``seed=`` merged, up to `seeds_per_process`
    seeds a job, in the order the sweep lists them: ``[..., seed=<first>, seed_group=[a,b,...]]``."""
    if (
        isinstance(seeds_per_process, bool)
        or int(seeds_per_process) != seeds_per_process
        or seeds_per_process < 1
    ):
        raise ValueError(
            f"seeds_per_process={seeds_per_process!r} must be a positive integer (1: a job per seed)"
        )
    if seeds_per_process == 1:
        return jobs
    groups: dict[tuple[str, ...], list[str]] = {}
    for job in jobs:
        seeds = [o for o in job if o.startswith(f"{SEED_KEY}=")]
        if any(o.startswith(f"{GROUP_KEY}=") for o in job):
            raise ValueError(
                f"seeds_per_process={seeds_per_process} groups the sweep's seeds: do not set {GROUP_KEY} too"
            )
        rest = tuple(o for o in job if not o.startswith(f"{SEED_KEY}="))
        groups.setdefault(rest, []).append(seeds[-1].split("=", 1)[1] if seeds else "")
    out = []
    for rest, seeds in groups.items():
        if seeds == [""]:  # the sweep does not sweep seeds: nothing to group
            out.append(list(rest))
            continue
        for i in range(0, len(seeds), seeds_per_process):
            chunk = seeds[i : i + seeds_per_process]
            out.append([*rest, f"{SEED_KEY}={chunk[0]}", f"{GROUP_KEY}=[{','.join(chunk)}]"])
    return out


class SeedGroupSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None = None,
        params: dict[str, str] | None = None,
        seeds_per_process: int = 1,
    ) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.seeds_per_process = seeds_per_process

    def split_arguments(self, overrides: list[Override], max_batch_size: int | None) -> list[list[list[str]]]:  # type: ignore[override]
        (jobs,) = BasicSweeper.split_arguments(overrides, None)
        jobs = group_jobs(jobs, int(self.seeds_per_process))
        if max_batch_size is None:
            return [jobs]
        return [jobs[i : i + max_batch_size] for i in range(0, len(jobs), max_batch_size)]
