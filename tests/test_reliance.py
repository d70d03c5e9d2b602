"""Location reliance at the end of training: the shuffle is a derangement of places, an encoding that
ignores location relies on it not at all, and the numbers reach results.json and metrics.csv."""

from __future__ import annotations

import json
import math

import pytest
import torch

from clay_exp.reliance import ARMS, LocationReliance, place_derangement
from clay_exp.results import read_results
from clay_exp.train import train
from tests.helpers import TINY, column, load_script, read_metrics

SETS = ("val", "val_heldout")
REGION = ["data=hierarchical_world", "data.split=region", "trainer.max_epochs=2", *TINY]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shuffling_gives_every_chip_another_place(seed):
    g = torch.Generator().manual_seed(seed)
    # 50 chips at 13 places, the largest holding 10 (several chips share a place, as at a site)
    place = torch.cat([torch.full((10,), 0), torch.randint(1, 13, (40,), generator=g)])
    places = torch.stack([place * 1.5, -place.double()], dim=1)[torch.randperm(50, generator=g)]
    perm, kept = place_derangement(places, seed)
    assert sorted(perm.tolist()) == list(range(50))  # a permutation of the chips
    assert kept == 0 and not (places[perm] == places).all(dim=1).any()  # nobody keeps their place
    again, _ = place_derangement(places, seed)
    assert torch.equal(perm, again)  # seeded
    assert not torch.equal(perm, place_derangement(places, seed + 10)[0])


def test_shuffling_when_one_place_holds_most_chips_keeps_as_few_as_possible():
    places = torch.tensor([0.0] * 7 + [1.0, 2.0, 3.0])[:, None]  # 7 of 10 chips at one place
    perm, kept = place_derangement(places)
    assert sorted(perm.tolist()) == list(range(10))
    assert kept == int((places[perm] == places).sum()) == 2 * 7 - 10  # the fewest possible
    assert place_derangement(torch.zeros(4, 2))[1] == 4  # one place: nobody can move
    assert place_derangement(torch.zeros(1, 2)) == (torch.arange(1), 1)


def test_bad_settings_fail_early():
    with pytest.raises(ValueError, match=r"every_n_epochs=-1 must be an integer >= 0"):
        LocationReliance(every_n_epochs=-1)


def _reliance_keys(sets=SETS):
    return {f"{s}/{arm}" for s in sets for arm in [*ARMS, "reliance"] if arm != "loss"}


def test_an_encoding_that_ignores_location_does_not_rely_on_it(make_cfg, tmp_path):
    train(make_cfg(["encoding=none", *REGION]))
    final = read_results(tmp_path)["final"]
    assert _reliance_keys() <= set(final)
    for s in SETS:
        assert final[f"{s}/reliance"] == 0.0  # nothing to shuffle: the same numbers
        assert final[f"{s}/loss_missing"] == final[f"{s}/loss_shuffled"]
        assert (
            final[f"{s}/loss_prior_shuffled"] == final[f"{s}/loss_prior"] == final[f"{s}/loss_prior_missing"]
        )
        assert final[f"{s}/loss_shuffled"] == pytest.approx(final[f"{s}/loss"], abs=1e-6)


def test_the_measures_reach_results_json_and_metrics_csv(make_cfg, tmp_path):
    train(make_cfg(["encoding=xyz", "injection=token", *REGION]))
    final = read_results(tmp_path)["final"]
    rows = read_metrics(tmp_path)
    assert _reliance_keys() <= set(final) and "time/reliance_s" not in final
    assert column(rows, "time/reliance_s")[0] > 0  # what it cost, beside it in metrics.csv
    for key in _reliance_keys():
        assert math.isfinite(final[key])
        assert column(rows, key) == pytest.approx([final[key]], rel=1e-6)  # logged once, at the end
    for s in SETS:
        # the recomputed given loss is the validation's own (same chips, same masked patches)
        given = final[f"{s}/loss_shuffled"] - final[f"{s}/reliance"]
        assert given == pytest.approx(final[f"{s}/loss"], abs=1e-5)
        assert final[f"{s}/loss_shuffled"] != final[f"{s}/loss"]  # the token carries the location
        assert final[f"{s}/loss_prior_shuffled"] != final[f"{s}/loss_prior"]  # also to the decoder


def test_every_n_epochs_logs_during_training_without_a_second_row_at_the_end(make_cfg, tmp_path):
    train(make_cfg(["encoding=xyz", "callbacks.location_reliance.every_n_epochs=1", *REGION]))
    rows = read_metrics(tmp_path)
    steps = [int(r["step"]) for r in rows if r.get("val/reliance")]
    assert len(steps) == 2 and steps == [int(r["step"]) for r in rows if r.get("val/loss")]
    final = read_results(tmp_path)["final"]
    assert column(rows, "val/loss_shuffled")[-1] == pytest.approx(final["val/loss_shuffled"], rel=1e-6)


def test_the_benchmark_reads_what_the_evaluation_cost_from_the_run(tmp_path):
    out = tmp_path / "reliance.json"
    saved = load_script("benchmark_reliance").main(["--out", str(out), "encoding=xyz", *REGION])
    assert json.loads(out.read_text())["reliance_s"] == saved["reliance_s"] > 0
    assert 0 < saved["reliance_share_of_wall"] < 1 and saved["steps"] == 8
