"""Entry point: ``python train.py [overrides]`` (Hydra). See README.md and ``configs/train.yaml``."""

import hydra
from omegaconf import DictConfig

from clay_exp.train import train


@hydra.main(version_base="1.3", config_path="configs", config_name="train.yaml")
def main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    print(f"\nResults: {results['output_dir']}/results.json")
    # The return value is what a Hydra sweeper (e.g. Optuna) optimises.
    return results.get("final", {}).get("val/loss")


if __name__ == "__main__":
    main()
