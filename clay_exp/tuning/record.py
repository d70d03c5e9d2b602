"""What a run of a tuned study records (``results.json``'s ``tuning``): the values it ran with, and
where they came from — a tuned file (and the tuning run behind it), a tuning trial, or nothing:
``default (untuned)``.

A tuned file (configs/tuned/<experiment>/<arm>.yaml, written by `clay_exp.tuning.runner`) sets the
chosen values and a ``tuning_source`` node saying where they came from; a tuning trial gets a
``tuning_source`` node from the tuner's overrides. The values themselves are read from the composed
config, so a value overridden on the command line is recorded as run, and flagged.
"""

from __future__ import annotations

from typing import Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from clay_exp.tuning.declaration import TuningDeclaration, arm_space, current_values

#: The config node (set by a tuned file or by the tuner) that says where a run's values came from.
SOURCE_KEY = "tuning_source"
#: The source of a run whose study declares tuning but which ran without a tuned file.
UNTUNED = "default (untuned)"


def declared_tuning(cfg: DictConfig) -> TuningDeclaration | None:
    """The study's tuning declaration (``study.tuning``), or None when the run declares none."""
    node = OmegaConf.select(cfg, "study.tuning", default=None)
    return None if node is None else TuningDeclaration.from_config(node)


def tuning_record(cfg: DictConfig) -> dict[str, Any] | None:
    """``results.json``'s ``tuning`` entry of a run (module docstring); None outside a tuned study."""
    declaration = declared_tuning(cfg)
    if declaration is None:
        return None
    encoding_class = get_class(cfg.encoding._target_)
    space = arm_space(declaration, str(cfg.encoding_name), encoding_class, cfg)
    values = current_values(cfg, space, encoding_class)
    source = cfg.get(SOURCE_KEY)
    if source is None:
        return {"source": UNTUNED, "values": values}
    source = OmegaConf.to_container(source, resolve=True)
    if source.get("kind") == "trial":
        return {
            "source": f"tuning trial {source.get('trial')}",
            "run": source.get("run"),
            "trial": source.get("trial"),
            "values": values,
        }
    record = {
        "source": source.get("file"),
        "run": source.get("run"),
        "trial": source.get("trial"),
        "values": values,
    }
    chosen = source.get("chosen") or {}
    overridden = sorted(k for k, v in chosen.items() if k in values and values[k] != v)
    if overridden:
        record["overridden"] = overridden  # the run's own overrides replaced these tuned values
    return record
