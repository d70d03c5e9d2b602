"""Every composed run config as one YAML file, to diff two checkouts: ``scripts/dump_configs.py OUT``.

Writes, resolved as ``python train.py <overrides> --cfg job --resolve`` prints them (with a fixed run
folder, so two dumps differ only where the configs do): every experiment x each arm it sweeps
(``arm``), every plain ``encoding=<name>`` and every ``data=<name>``. A refactoring that must not
change behaviour is checked by dumping before and after and diffing the folders::

    PYTHONPATH=/path/to/before python scripts/dump_configs.py /tmp/before
    PYTHONPATH=$PWD python scripts/dump_configs.py /tmp/after
    diff -r /tmp/before /tmp/after

The configs are read from the ``configs/`` beside the imported ``clay_exp`` package (so PYTHONPATH
picks the checkout). A config that does not compose is written as its error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from clay_exp.config import CONFIG_DIR, compose_config, config_options

#: The run folder every dumped config gets (a fixed string: the dumps must not differ by a date).
RUN_DIR = "/tmp/clay-exp-config-dump/run"


def swept_arms(experiment: str) -> list[str]:
    """The arms `experiment` sweeps (``hydra.sweeper.params.arm``), [] if it sweeps none."""
    cfg = compose_config([f"experiment={experiment}"], hydra_node=True)
    arms = (cfg.hydra.sweeper.get("params") or {}).get("arm")
    return [] if arms is None else [a.strip() for a in str(arms).split(",")]


def override_sets() -> dict[str, list[str]]:
    """File name -> overrides, for every config the dump holds."""
    sets: dict[str, list[str]] = {}
    for experiment in config_options("experiment"):
        arms = swept_arms(experiment)
        sets[f"experiment={experiment}"] = [f"experiment={experiment}"]
        for arm in arms:
            sets[f"experiment={experiment},arm={arm}"] = [f"experiment={experiment}", f"arm={arm}"]
    for group in ("encoding", "data"):
        for name in config_options(group):
            sets[f"{group}={name}"] = [f"{group}={name}"]
    return sets


def dump(out: Path) -> int:
    """Write every config of `override_sets` below `out`; returns how many were written."""
    out.mkdir(parents=True, exist_ok=True)
    sets = override_sets()
    for name, overrides in sets.items():
        try:
            text = OmegaConf.to_yaml(compose_config(overrides, RUN_DIR), resolve=True)
        except Exception as error:  # a config that fails is part of what is compared
            text = f"ERROR {type(error).__name__}: {error}\n"
        (out / f"{name}.yaml").write_text(text)
    return len(sets)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the folder to write the YAML files into")
    args = p.parse_args(argv)
    print(f"{dump(args.out)} configs from {CONFIG_DIR} written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
