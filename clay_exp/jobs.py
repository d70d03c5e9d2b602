"""What one job of ``train.py`` trains: one run, or the seeds of a seed group (clay_exp.seed_group)."""

from __future__ import annotations

from omegaconf import DictConfig

from clay_exp.results import RunRecord
from clay_exp.seed_group import train_seed_group
from clay_exp.train import train


def train_runs(cfg: DictConfig) -> list[RunRecord]:
    """The runs of one job: one run, or one per seed of ``seed_group`` (several seeds trained in one
    process, clay_exp.seed_group; a sweep with ``seeds_per_process=k`` makes such jobs)."""
    if cfg.get("seed_group") is not None:
        return train_seed_group(cfg)
    return [train(cfg)]
