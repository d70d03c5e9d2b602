"""The done-criterion of "adding an encoding is one file + one YAML": a throwaway encoding written
outside the repository (a module on sys.path, a YAML in an extra config folder), with no edit of any
repo file, trains, is swept by compare_encodings, is probed and is benchmarked. A second one that
declares a missing optional package is skipped, with the reason, by everything that enumerates
encodings: one declaration on the class decides it everywhere."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from clay_exp import catalog
from clay_exp.config import CONFIG_DIRS_ENV, compose_config, swept_options
from clay_exp.probe import FitSettings, run_probe
from clay_exp.probe import run as probe_run
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import TINY, load_script

ENCODING_FILE = """
import torch
from torch import Tensor, nn

from clay_exp.encodings.base import SpatialEncoding


class ThrowawayEncoding(SpatialEncoding):
    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        self.proj = nn.Linear(2, dim)
        self.out_dim = dim

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return self.proj(torch.stack([lat, lon], dim=-1).float() / 180)


class NeedsMissingPackage(ThrowawayEncoding):
    requires_package = "clay_exp_throwaway_missing"
"""
NEW, NEEDS_PACKAGE = "throwaway", "throwaway_needs_package"


@pytest.fixture
def throwaway(tmp_path, monkeypatch):
    """One .py file on sys.path and one YAML per encoding in a config folder outside the repo."""
    src, configs = tmp_path / "src", tmp_path / "configs"
    src.mkdir()
    (src / "throwaway_encoding.py").write_text(ENCODING_FILE)
    (configs / "encoding").mkdir(parents=True)
    (configs / "encoding" / f"{NEW}.yaml").write_text(
        "_target_: throwaway_encoding.ThrowawayEncoding\ndim: 3\n"
    )
    (configs / "encoding" / f"{NEEDS_PACKAGE}.yaml").write_text(
        "_target_: throwaway_encoding.NeedsMissingPackage\n"
    )
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv(CONFIG_DIRS_ENV, str(configs))
    return tmp_path


def test_the_plugin_and_the_config_module_read_the_same_variable():
    from hydra_plugins.clay_exp_config_dirs import config_dirs as plugin

    assert plugin.CONFIG_DIRS_ENV == CONFIG_DIRS_ENV


def test_a_new_encoding_is_one_file_and_one_yaml(throwaway):
    assert {NEW, NEEDS_PACKAGE} <= set(catalog.encoding_names())  # every listing's default
    assert catalog.unavailable_reason(NEW) is None
    missing = catalog.unavailable_reason(NEEDS_PACKAGE)
    assert missing and "clay_exp_throwaway_missing" in missing

    # (a) it trains
    run_dir = throwaway / "run"
    cfg = compose_config(["logger=csv", f"encoding={NEW}", "trainer.fast_dev_run=true", *TINY], run_dir)
    assert train(cfg).status == "completed"
    saved = read_results(run_dir)
    assert saved["encoding"] == NEW and math.isfinite(saved["final"]["val/loss"])
    assert saved["params"]["encoding"] > 3 * 2  # its Linear(2, 3) + the MAE's projection of it

    # (b) compare_encodings sweeps it: the glob over the options Hydra's own config loader finds
    # (the search-path plugin adds the extra folder), as the known-answer comparison does
    assert NEW in swept_options(["experiment=compare_encodings"], "encoding")
    assert NEW in swept_options(["experiment=compare_encodings_known_answer"], "encoding")

    # (c) the probe picks it up (every encoding by default), fits it, and skips the other with why
    assert {NEW, NEEDS_PACKAGE} <= set(probe_run.check_encodings(()))
    result = run_probe(
        [NEW, NEEDS_PACKAGE], task="land", seeds=(0,), n_train=64, n_test=32,
        fit=FitSettings(steps=3), log=lambda msg: None,
    )  # fmt: skip
    status = {r.encoding: r.status for r in result.runs}
    assert status == {NEW: "completed", NEEDS_PACKAGE: "skipped"}
    assert result.skipped == {NEEDS_PACKAGE: missing}

    # (d) the benchmarks time it (encodings alone, and in a training step); the other is skipped
    out = throwaway / "benchmark_encodings.json"
    argv = ["--encodings", NEW, NEEDS_PACKAGE, "--points", "64", "--batch-size", "8", "--repeats", "1"]
    argv += ["--step-repeats", "1", "--devices", "cpu", "--threads", "1", "--out", str(out)]
    load_script("benchmark_encodings").main(argv)
    rows = {r["encoding"]: r for r in json.loads(out.read_text())["results"][0]["encodings"]}
    assert rows[NEW]["out_dim"] == 3 and rows[NEW]["ms_per_points"] > 0
    assert rows[NEEDS_PACKAGE]["skipped"] == missing
    args = argparse.Namespace(batch_size=8, steps=1, warmup=1, rounds=1)
    steps = {
        r["encoding"]: r
        for r in load_script("benchmark").bench_encodings([NEW, NEEDS_PACKAGE], args, torch.device("cpu"))
    }
    assert steps[NEW]["step_ms"] > 0 and steps[NEW]["world"] == "synthetic"
    assert steps[NEEDS_PACKAGE]["skipped"] == missing
