"""The whole probe: every encoding x task x seed, skipped and failed fits, the report it writes
(through its command line, scripts/probe.py)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from clay_exp.probe import TASKS, FitSettings, build_encoding, fit_probe, run_probe, sample_points
from clay_exp.probe import run as probe_run
from tests.helpers import load_script


@pytest.fixture(scope="module")
def cli():
    return load_script("probe")


def make(name: str, seed: int = 0):
    return lambda: build_encoding(name, seed)


def test_cli_writes_the_report_with_the_library_numbers(tmp_path, capsys, cli):
    out = tmp_path / "probe"
    argv = ["--encodings", "none", "sincos", "oracle", "--task", "land", "--seeds", "0", "1"]
    argv += ["--n-train", "300", "--n-test", "200", "--steps", "20", "--out", str(out)]
    threads = torch.get_num_threads()
    assert cli.main([*argv, "--threads", "1"]) == 0
    assert torch.get_num_threads() == threads  # restored for the rest of this process
    printed = capsys.readouterr().out
    for name in ("comparison.md", "comparison.csv", "runs.csv", "final_loss.png", "probe.json"):
        assert (out / name).stat().st_size > 0
    # The library, on the same settings, returns the numbers the report shows (fits are seeded).
    data = sample_points(TASKS["land"], 300, 200)
    fit = FitSettings(steps=20)
    table = pd.read_csv(out / "comparison.csv").set_index("encoding")
    md = (out / "comparison.md").read_text()
    assert md.strip() == printed.strip()
    for name in ("none", "sincos"):
        fits = [fit_probe(make(name, seed), data, seed, fit) for seed in (0, 1)]
        for key in ("test/acc", "test_heldout/acc", "test/macro_f1"):
            values = [f.metrics[key] for f in fits]
            assert table.loc[name, f"{key} mean"] == pytest.approx(np.mean(values), abs=1e-9)
        assert f"| `{name}` | 2 | {np.mean([f.metrics['test/acc'] for f in fits]):.4f} ± " in md
    assert table.loc["oracle", "runs_completed"] == 0
    assert "| `land-oracle-s0` | `oracle` | 0 | skipped | needs batch keys ['latents', 'latents_seen']" in md
    facts = json.loads((out / "probe.json").read_text())
    assert facts["majority_rate"]["land"] == pytest.approx(data.majority_rates())
    assert list(facts["skipped"]) == ["oracle"] and "latents" in facts["skipped"]["oracle"]
    assert facts["settings"]["threads"] == 1 and facts["fit"]["steps"] == 20
    assert f"test {data.majority_rates()['test']:.4f}" in md


def test_a_fit_that_fails_is_listed_not_averaged(monkeypatch):
    real = probe_run.fit_probe

    def fail_for_sincos(make_encoding, data, seed, fit):
        if type(make_encoding()).__name__ == "SinCosEncoding":
            raise RuntimeError("boom")
        return real(make_encoding, data, seed, fit)

    monkeypatch.setattr(probe_run, "fit_probe", fail_for_sincos)
    result = run_probe(["none", "sincos"], "land", [0], 100, 100, FitSettings(steps=3), log=lambda _: None)
    assert {(r.encoding, r.status, r.error) for r in result.runs} == {
        ("none", "completed", None),
        ("sincos", "failed", "RuntimeError: boom"),
    }
    (section,) = result.comparison().sections
    assert [r.encoding for r in section.not_averaged] == ["sincos"]


def test_bad_input_is_refused_early(capsys, cli):
    with pytest.raises(ValueError, match=r"unknown encoding\(s\) \['bogus'\]; choose from \[.*'sincos'"):
        run_probe(["bogus"])
    with pytest.raises(ValueError, match=r"task='sea' is not one of \['land', 'zone', 'both'\]"):
        run_probe(["none"], task="sea")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--encodings", "bogus"])
    assert exit_info.value.code == 2 and "unknown encoding(s) ['bogus']" in capsys.readouterr().err
