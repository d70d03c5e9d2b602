"""Entry point: ``python train.py [overrides]`` (Hydra). See README.md and ``configs/train.yaml``."""

import hydra
from omegaconf import DictConfig

from clay_exp.jobs import train_runs
from clay_exp.resume import register_resolvers

# The run folder (new, or the run being resumed) is decided while composing; a bad `resume=` or
# `experiment_name=` stops here with one line, before anything is written.
register_resolvers(one_line_errors=True)


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    records = train_runs(cfg)  # one run, or one per seed of a seed group (seeds_per_process)
    for record in records:
        print(f"\nResults: {record.output_dir}/results.json")
    # The return value is what a Hydra sweeper (e.g. Optuna) optimises.
    values = [v for r in records if (v := r.metric("val/loss")) is not None]
    return sum(values) / len(values) if values else None


if __name__ == "__main__":
    main()
