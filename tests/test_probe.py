"""The location probe: points and labels, scores, fits that learn, and the report it writes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from clay_exp import probe
from clay_exp.data.earth import EarthWorld
from clay_exp.data.splits import RegionSplit
from clay_exp.probe import (
    HELDOUT_TEST_SET,
    TASKS,
    TEST_SET,
    FitSettings,
    SplitSettings,
    build_encoding,
    fit_probe,
    main,
    run_probe,
    sample_points,
    scores,
)

SHORT = FitSettings(steps=60, lr=3e-2, hidden_dim=32)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The probe's own default (scripts/probe.py --threads 1): tiny fits stall on two busy threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def land_data() -> probe.TaskData:
    return sample_points(TASKS["land"], n_train=600, n_test=400)


def make(name: str, seed: int = 0):
    return lambda: build_encoding(name, seed)


def test_points_are_fixed_labelled_and_split_by_region(land_data):
    again = sample_points(TASKS["land"], n_train=600, n_test=400)
    assert torch.equal(again.train.lat, land_data.train.lat) and torch.equal(
        again.train.lon, land_data.train.lon
    )
    world = EarthWorld(1, locations="sphere")
    region = RegionSplit()  # the split's defaults: z3, a quarter of the tiles, seed 0
    sets = {"train": land_data.train, **land_data.tests}
    assert {k: len(v) for k, v in sets.items()} == {"train": 600, TEST_SET: 400, HELDOUT_TEST_SET: 400}
    for name, points in sets.items():
        _, land = world.zone_and_land(points.lat, points.lon)
        assert torch.equal(points.labels, land.long())
        inside = region.is_heldout(points.lat, points.lon)
        assert bool(inside.all()) if name == HELDOUT_TEST_SET else not bool(inside.any())
    pairs = {(a, b) for s in sets.values() for a, b in zip(s.lat.tolist(), s.lon.tolist(), strict=True)}
    assert len(pairs) == 1400  # no point in two sets
    # Uniform by area: |sin(lat)| is uniform on [0, 1], mean 1/2 (uniform in degrees would give 2/pi).
    assert float(torch.sin(torch.deg2rad(land_data.train.lat)).abs().mean()) == pytest.approx(0.5, abs=0.05)


def test_zone_points_lie_on_land_with_their_zone():
    data = sample_points(TASKS["zone"], n_train=300, n_test=200, split=SplitSettings(split="random"))
    assert set(data.tests) == {TEST_SET}
    world = EarthWorld(1)
    zone, land = world.zone_and_land(data.train.lat, data.train.lon)
    assert bool(land.all()) and torch.equal(data.train.labels, zone)
    assert data.classes == world.zone_names and len(data.classes) == 32


def test_scores_match_hand_computation():
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 0, 0])
    logits = torch.nn.functional.one_hot(preds, 4).float()  # class 3: absent from both, not averaged
    s = scores(logits, labels, 4)
    recall = [2 / 3, 1 / 2, 0.0]
    precision = [2 / 4, 1 / 2, 0.0]
    f1 = [2 * p * r / (p + r) if p + r else 0.0 for p, r in zip(precision, recall, strict=True)]
    assert s["acc"] == pytest.approx(3 / 6)
    assert s["balanced_acc"] == pytest.approx(np.mean(recall))
    assert s["macro_f1"] == pytest.approx(np.mean(f1))


def test_learnable_encoding_beats_majority_and_none_equals_it(land_data):
    majority = land_data.majority_rates()
    none = fit_probe(make("none"), land_data, seed=0, fit=SHORT)
    for name, rate in majority.items():
        assert none.metrics[f"{name}/acc"] == pytest.approx(rate, abs=1e-6)  # it cannot see location
        assert none.metrics[f"{name}/balanced_acc"] == pytest.approx(0.5, abs=1e-6)
    xyz = fit_probe(make("xyz"), land_data, seed=0, fit=SHORT)
    assert xyz.metrics["test/acc"] > majority["test"] + 0.05
    assert xyz.metrics["test/balanced_acc"] > 0.6
    assert xyz.train_loss[-1] < 0.7 * xyz.train_loss[0]
    assert xyz.params_trainable == xyz.params > 0 and none.params == 0


def test_encoding_parameters_train_with_the_head(land_data):
    torch.manual_seed(0)
    before = [p.detach().clone() for p in build_encoding("xyz", 0).parameters()]
    trained = []

    def build():
        encoding = make("xyz")()
        trained.append(encoding)
        return encoding

    fit_probe(build, land_data, seed=0, fit=FitSettings(steps=5))
    after = list(trained[0].parameters())
    assert not any(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    # The same seed gives the same fit: runs pair up by seed.
    again = fit_probe(make("xyz"), land_data, seed=0, fit=FitSettings(steps=5))
    first = fit_probe(make("xyz"), land_data, seed=0, fit=FitSettings(steps=5))
    assert again.metrics == first.metrics


def test_cli_writes_the_report_with_the_library_numbers(tmp_path, capsys):
    out = tmp_path / "probe"
    argv = ["--encodings", "none", "sincos", "oracle", "--task", "land", "--seeds", "0", "1"]
    argv += ["--n-train", "300", "--n-test", "200", "--steps", "20", "--out", str(out)]
    threads = torch.get_num_threads()
    assert main([*argv, "--threads", "1"]) == 0
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
    assert "| `land-oracle-s0` | `oracle` | 0 | skipped | needs batch keys ['latents']" in md
    facts = json.loads((out / "probe.json").read_text())
    assert facts["majority_rate"]["land"] == pytest.approx(data.majority_rates())
    assert list(facts["skipped"]) == ["oracle"] and "latents" in facts["skipped"]["oracle"]
    assert facts["settings"]["threads"] == 1 and facts["fit"]["steps"] == 20
    assert f"test {data.majority_rates()['test']:.4f}" in md


def test_a_fit_that_fails_is_listed_not_averaged(monkeypatch):
    real = probe.fit_probe

    def fail_for_sincos(make_encoding, data, seed, fit):
        if type(make_encoding()).__name__ == "SinCosEncoding":
            raise RuntimeError("boom")
        return real(make_encoding, data, seed, fit)

    monkeypatch.setattr(probe, "fit_probe", fail_for_sincos)
    result = run_probe(["none", "sincos"], "land", [0], 100, 100, FitSettings(steps=3), log=lambda _: None)
    assert {(r.encoding, r.status, r.error) for r in result.runs} == {
        ("none", "completed", None),
        ("sincos", "failed", "RuntimeError: boom"),
    }
    (section,) = result.comparison().sections
    assert [r.encoding for r in section.not_averaged] == ["sincos"]


def test_bad_input_is_refused_early(capsys):
    with pytest.raises(ValueError, match=r"unknown encoding\(s\) \['bogus'\]; choose from \[.*'sincos'"):
        run_probe(["bogus"])
    with pytest.raises(ValueError, match=r"task='sea' is not one of \['land', 'zone', 'both'\]"):
        run_probe(["none"], task="sea")
    with pytest.raises(ValueError, match=r"steps=0.*lr=-1"):
        FitSettings(steps=0, lr=-1)
    with pytest.raises(ValueError, match=r"data.split='tiles'"):
        SplitSettings(split="tiles")
    with pytest.raises(SystemExit) as exit_info:
        main(["--encodings", "bogus"])
    assert exit_info.value.code == 2 and "unknown encoding(s) ['bogus']" in capsys.readouterr().err
