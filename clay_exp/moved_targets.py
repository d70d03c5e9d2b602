"""Classes that configs name (``_target_``) and that have moved: a run's stored config read with
today's names.

Every run records its resolved config (``results.json``, `clay_exp.results.RunRecord`). When a class
a config names moves to another module, the runs recorded before it moved still name the old path,
which no longer imports. Reading a record renames those paths (`current_targets`), so that resuming
such a run, probing it, computing its world's floors in the report and comparing it with newer runs
work as they did. Add a line here whenever a ``_target_`` in configs/ changes.
"""

from __future__ import annotations

from typing import Any

#: Old ``_target_`` -> the one configs name now.
MOVED_TARGETS = {
    # issue 21: the generated worlds moved into clay_exp/data/worlds/
    "clay_exp.data.synthetic.SyntheticWorld": "clay_exp.data.worlds.SyntheticWorld",
    "clay_exp.data.hierarchical.HierarchicalWorld": "clay_exp.data.worlds.HierarchicalWorld",
    "clay_exp.data.earth.EarthWorld": "clay_exp.data.worlds.EarthWorld",
}


def current_targets(config: Any) -> Any:
    """`config` (plain dicts and lists, as a record stores it) with every moved ``_target_`` renamed;
    everything else, key order included, as it was."""
    if isinstance(config, dict):
        return {
            k: MOVED_TARGETS.get(v, v) if k == "_target_" and isinstance(v, str) else current_targets(v)
            for k, v in config.items()
        }
    if isinstance(config, list):
        return [current_targets(v) for v in config]
    return config
