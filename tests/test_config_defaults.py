"""The data and hierarchical-encoding configs share base YAMLs through `defaults:`; the bases are not
options, and each option still resolves to the node it had when it stated every key itself."""

from __future__ import annotations

import inspect

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

from clay_exp.config import CONFIG_DIR, compose_config, config_options


def test_base_yamls_are_not_options_of_their_group():
    assert config_options("data") == [
        "earth", "geotiff", "hierarchical_world", "scenes", "scenes_all_bands", "scenes_landsat", "synthetic",
    ]  # fmt: skip
    encodings = config_options("encoding")
    assert {"hierarchical", "hierarchical_plain", "hierarchical_hashed"} <= set(encodings)
    for group in ("data", "encoding"):
        bases = {p.stem for p in (CONFIG_DIR / group / "base").glob("*.yaml")}
        assert bases and not bases & set(config_options(group))


@pytest.mark.parametrize("world", config_options("data"))
def test_every_data_option_gives_its_datamodule_exactly_its_arguments(world):
    """No `???` left from a base, no key missing, none the class rejects (e.g. pin_memory for geotiff)."""
    data = compose_config([f"data={world}"]).data
    assert not OmegaConf.missing_keys(data)
    params = set(inspect.signature(get_class(data._target_)).parameters)
    hydra_keys = {k for k in data if k.startswith("_") and k.endswith("_")}  # _target_, _recursive_
    assert set(data) - hydra_keys == params
    if "world" in data:
        assert data.world._partial_ is True and not data.world._target_.startswith("clay_exp.data.datamodule")


def resolved(overrides: list[str], node: str) -> dict:
    return OmegaConf.to_container(compose_config(overrides)[node], resolve=True)


def test_world_options_keep_their_shared_settings():
    shared = {
        "bands": 4, "chip_size": 32, "batch_size": 64, "train_size": 3200, "val_size": 1024,
        "num_workers": 0, "split": "random", "heldout_zoom": 3, "heldout_fraction": 0.25, "heldout_seed": 0,
    }  # fmt: skip
    for world in config_options("data"):
        data = resolved([f"data={world}", "seed=7"], "data")
        own = {}  # what a data option sets for itself
        if world.startswith("scenes"):  # blocks inside 20 km scenes: z14 (Landsat's 30 m chips: z13)
            own["heldout_zoom"] = 13 if world == "scenes_landsat" else 14
        if world == "scenes_all_bands":
            own["bands"] = 13
        assert {k: data[k] for k in shared} == shared | own, world
        if "world" in data:
            assert (data["pin_memory"], data["shuffle_seed"]) == (True, 7)
    assert resolved(["data=earth"], "data")["world"]["locations"] == "land"


HIERARCHICAL = {
    "_target_": "clay_exp.encodings.hierarchical.HierarchicalTileEncoding",
    "levels": [0, 5, 10, 15],
    "max_zoom": 15,
    "dim_per_level": 16,
    "combine": "concat",
    "max_rows": 65536,
    "init_std": 0.02,
    "share_scaling": "count",
    "share_floor": 1.0e-6,
    "share_via": "lr",
    "share_init": "none",
}


def test_hierarchical_variants_resolve_to_the_nodes_they_stated_in_full():
    """Key order too: results.json and resume compare these nodes, and the old runs hold them."""
    plain = {k: v for k, v in HIERARCHICAL.items() if k not in ("share_floor", "share_via")}
    expected = {
        "hierarchical": HIERARCHICAL,
        "hierarchical_hashed": HIERARCHICAL | {"levels": [0, 5, 10, 15, 20], "max_zoom": 20},
        "hierarchical_plain": plain | {"share_scaling": "none"},
    }
    for name, node in expected.items():
        got = resolved([f"encoding={name}"], "encoding")
        assert list(got.items()) == list(node.items()), name
