"""Hierarchical tables: the `observed` share scaling, level dropout, unseen rows and the tables' lr_scale.

`observed` divides a row's update by the mean number of training chips per batch that have reached
it so far (at least 1), so on a hand-built history its factor is known in closed form; level dropout
and ``unseen_rows=zero`` decide what a chip at an unseen place reads, checked row by row.
"""

from __future__ import annotations

import pytest
import torch

from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.train import build_module

LEVELS = [0, 5, 10, 15]
# Two chips in one z15 tile in Paris, one more in Paris' z5 tile only, two in Sydney's z10 tile
# (the batch of tests/encodings/test_hierarchical.py; its per-level counts are checked there).
LAT = torch.tensor([48.85660, 48.85665, 48.0, -33.86, -33.87], dtype=torch.float64)
LON = torch.tensor([2.35220, 2.35225, 3.0, 151.21, 151.25], dtype=torch.float64)
COUNTS = {0: [5, 5, 5, 5, 5], 5: [3, 3, 3, 2, 2], 10: [2, 2, 1, 2, 2], 15: [2, 2, 1, 1, 1]}


def encoding(**kwargs) -> HierarchicalTileEncoding:
    torch.manual_seed(0)
    return HierarchicalTileEncoding(levels=LEVELS, dim_per_level=3, **kwargs).double()


def weighted_sum(enc: HierarchicalTileEncoding, idx: list[int]) -> torch.Tensor:
    weights = torch.randn(
        len(idx), enc.out_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64
    )
    return (enc({"lat": LAT[idx], "lon": LON[idx]}) * weights).sum()


def level_grads(enc: HierarchicalTileEncoding, idx: list[int]) -> list[torch.Tensor]:
    """Each level's gradient at the rows of chips `idx` after one training forward/backward."""
    enc.zero_grad()
    weighted_sum(enc, idx).backward()
    chain = enc.tile_indices(LAT[idx], LON[idx])
    return [t.embedding.weight.grad[t.rows(*chain[t.zoom])].clone() for t in enc.tables]


# -- observed -----------------------------------------------------------------------------------
def test_observed_via_grad_divides_by_the_rows_mean_chips_per_batch_so_far():
    enc, twin = encoding(share_scaling="observed", share_via="grad"), encoding()
    everyone, paris = [0, 1, 2, 3, 4], [0, 1]
    # Batch 1: every row has been reached by exactly its count in this one batch: factor 1/count.
    for k, (grad, twin_grad) in enumerate(
        zip(level_grads(enc, everyone), level_grads(twin, everyone), strict=True)
    ):
        counts = torch.tensor(COUNTS[LEVELS[k]], dtype=torch.float64)[:, None]
        torch.testing.assert_close(grad, twin_grad / counts, rtol=1e-12, atol=0)
    # Batch 2 (the two Paris chips): the history decides, not this batch. z0: 5 + 2 chips in 2
    # batches -> 1/3.5; z5 (3 + 2) and z10 (2 + 2) -> 1/2.5 and 1/2; z15 (2 + 2) -> 1/2.
    expected = {0: 3.5, 5: 2.5, 10: 2.0, 15: 2.0}
    for k, (grad, twin_grad) in enumerate(
        zip(level_grads(enc, paris), level_grads(twin, paris), strict=True)
    ):
        torch.testing.assert_close(grad, twin_grad / expected[LEVELS[k]], rtol=1e-12, atol=0)
    assert float(enc.train_batches) == 2
    # Batch 3 (the Paris-z5-only chip): its z15 row has 1 chip in 3 batches, < 1 a batch: base rate.
    grads, twin_grads = level_grads(enc, [2]), level_grads(twin, [2])
    torch.testing.assert_close(grads[3], twin_grads[3], rtol=1e-12, atol=0)
    torch.testing.assert_close(grads[0], twin_grads[0] / (8 / 3), rtol=1e-12, atol=0)


def test_observed_via_lr_divides_each_adamw_row_update_by_its_factor():
    enc, twin = encoding(share_scaling="observed"), encoding()
    optimizers = [torch.optim.AdamW(e.param_groups()) for e in (enc, twin)]
    for e, optimizer in zip((enc, twin), optimizers, strict=True):
        e.attach_optimizer(optimizer)
        weighted_sum(e, [0, 1, 2, 3, 4]).backward()
        optimizer.step()
        optimizer.zero_grad()
    start = [t.embedding.weight.detach().clone() for t in enc.tables]
    twin_start = [t.embedding.weight.detach().clone() for t in twin.tables]
    for e, optimizer in zip((enc, twin), optimizers, strict=True):
        weighted_sum(e, [0, 1]).backward()
        optimizer.step()
    chain = enc.tile_indices(LAT[:2], LON[:2])
    expected = {0: 3.5, 5: 2.5, 10: 2.0, 15: 2.0}
    for k, table in enumerate(enc.tables):
        rows = table.rows(*chain[table.zoom])
        step = table.embedding.weight.detach()[rows] - start[k][rows]
        twin_step = twin.tables[k].embedding.weight.detach()[rows] - twin_start[k][rows]
        assert twin_step.abs().min() > 0
        # the objective is linear in the rows, so both saw the same gradients and Adam the same
        # moments: the twin's second step is the unscaled one
        torch.testing.assert_close(step, twin_step / expected[table.zoom], rtol=1e-6, atol=0)


# -- level dropout ------------------------------------------------------------------------------
def random_points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return 160 * torch.rand(n, generator=g, dtype=torch.float64) - 80, 360 * torch.rand(n, generator=g) - 180


def test_level_dropout_zeroes_that_share_of_training_chips_at_that_level_only():
    enc = encoding(level_dropout=[0.0, 0.0, 0.0, 0.25])
    lat, lon = random_points(4000)
    out = enc({"lat": lat, "lon": lon}).detach().view(4000, 4, 3)
    zero = (out == 0).all(dim=-1)
    assert not zero[:, :3].any()
    share, sd = float(zero[:, 3].double().mean()), (0.25 * 0.75 / 4000) ** 0.5
    assert abs(share - 0.25) < 5 * sd, share
    enc.eval()
    assert not (enc({"lat": lat, "lon": lon}).view(4000, 4, 3) == 0).all(dim=-1).any()  # never at evaluation


def test_a_dropped_chip_sends_no_gradient_to_its_row():
    enc = encoding(level_dropout=0.5)
    lat, lon = random_points(64)  # 64 distinct z15 tiles
    out = enc({"lat": lat, "lon": lon})
    out.sum().backward()
    table = enc.tables[3]
    rows = table.rows(*enc.tile_indices(lat, lon)[15])
    dropped = (out.detach().view(64, 4, 3)[:, 3] == 0).all(dim=-1)
    assert 0 < int(dropped.sum()) < 64
    grad_norm = table.embedding.weight.grad[rows].norm(dim=1)
    assert torch.all(grad_norm[dropped] == 0) and torch.all(grad_norm[~dropped] > 0)


# -- unseen rows --------------------------------------------------------------------------------
def test_unseen_rows_zero_reads_rows_no_training_chip_reached_as_zeros():
    enc = encoding(unseen_rows="zero")  # random init: unseen rows are non-zero vectors
    enc({"lat": LAT[:3], "lon": LON[:3]})  # training reached the Paris chips' rows only
    enc.eval()
    with torch.no_grad():
        out = enc({"lat": LAT, "lon": LON}).view(5, 4, 3)
    chain = enc.tile_indices(LAT, LON)
    for k, table in enumerate(enc.tables):
        rows_value = table.embedding.weight[table.rows(*chain[table.zoom])]
        seen = table.hits[table.rows(*chain[table.zoom])] > 0
        assert rows_value.abs().min() > 0
        torch.testing.assert_close(out[seen, k], rows_value[seen])
        assert torch.all(out[~seen, k] == 0)
    # z0 is one row, seen; Sydney's z5, z10 and z15 rows were never reached
    assert (out[3:, 0] != 0).all() and (out[3:, 1:] == 0).all() and (out[:3] != 0).all()


def test_a_dropped_chip_does_not_count_as_reaching_its_row():
    enc = encoding(unseen_rows="zero", level_dropout=[0.0, 0.0, 0.0, 0.5])
    lat, lon = random_points(64)
    out = enc({"lat": lat, "lon": lon}).detach().view(64, 4, 3)
    dropped = (out[:, 3] == 0).all(dim=-1)
    table = enc.tables[3]
    hits = table.hits[table.rows(*enc.tile_indices(lat, lon)[15])]
    assert torch.equal(hits, (~dropped).long())
    assert float(enc.tables[0].hits.sum()) == 64


def test_hit_counts_are_saved_and_restored_with_the_weights():
    enc = encoding(unseen_rows="zero")
    enc({"lat": LAT[:3], "lon": LON[:3]})
    state = enc.state_dict()
    assert {f"tables.{k}.hits" for k in range(4)} <= set(state) and "train_batches" in state
    fresh = encoding(unseen_rows="zero")
    fresh.load_state_dict(state)
    enc.eval(), fresh.eval()
    with torch.no_grad():
        torch.testing.assert_close(fresh({"lat": LAT, "lon": LON}), enc({"lat": LAT, "lon": LON}))
    assert not any("hits" in key for key in encoding().state_dict())  # the default keeps its old keys
    enc.half()  # casting the model leaves the counts exact integers
    assert enc.tables[0].hits.dtype == torch.long and int(enc.tables[0].hits.sum()) == 3


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level_dropout": 1.0}, r"level_dropout=1.0 must be a probability in \[0, 1\) or one per level"),
        (
            {"level_dropout": [0.1, 0.2]},
            r"level_dropout=\[0.1, 0.2\] must be .* one per level \(\[0, 5, 10, 15\]\)",
        ),
        ({"unseen_rows": "drop"}, r"unseen_rows='drop' is not one of \['keep', 'zero'\]"),
        ({"lr_scale": 0}, "lr_scale=0 must be > 0"),
        ({"share_scaling": "seen"}, r"share_scaling='seen' is not one of \[.*'batch_count', 'observed'\]"),
    ],
)
def test_bad_options_name_the_value_and_the_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalTileEncoding(levels=LEVELS, **kwargs)


def test_lr_scale_multiplies_every_tables_rate_under_sgd_and_adamw(make_cfg):
    tiny = [
        "model.scheduler=constant",
        "data.chip_size=8",
        "model.backbone.depth=1",
        "model.backbone.decoder_depth=1",
    ]
    sgd = build_module(
        make_cfg([*tiny, "encoding=hierarchical_plain", "+encoding.lr_scale=64", "model/optimizer=sgd"])
    )
    optimizer = sgd.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0.9
    rates = {g.get("name"): g["lr"] for g in optimizer.param_groups}
    base = optimizer.defaults["lr"]
    assert [rates[f"encoding/z{z:02d}"] for z in LEVELS] == [pytest.approx(64 * base)] * 4
    count = build_module(make_cfg([*tiny, "encoding=hierarchical", "+encoding.lr_scale=8"]))
    optimizer = count.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.AdamW)
    rates = {g.get("name"): g["lr"] for g in optimizer.param_groups}
    for z in LEVELS:
        factor = max(1e-6, 4.0 ** -(15 - z))
        assert rates[f"encoding/z{z:02d}"] == pytest.approx(8 * factor * optimizer.defaults["lr"], rel=1e-12)
