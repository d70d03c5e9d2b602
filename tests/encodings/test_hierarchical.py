"""The hierarchical tile embeddings: tile chain, dense vs hashed tables, collisions, shared-semantics scaling.

The update-size tests build the real LightningModule from the Hydra configs and take one optimizer
step through `MAELightningModule.configure_optimizers`, so they prove the wiring (encoding groups ->
module -> optimizer), not only the encoding. They run in float64 so that a step of lr·1e-6 on a row
of size 0.02 is resolved to far better than the 1e-6 relative tolerance.
"""

from __future__ import annotations

import logging
import math

import mercantile
import pytest
import torch

from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.encodings.tile_tables import level_share_factor
from clay_exp.hashing import hash_ints
from clay_exp.module import MAELightningModule
from clay_exp.tiles import MERCATOR_MAX_LAT
from clay_exp.train import build_module, train

TINY_MODEL = [
    "model.scheduler=constant",
    "model.backbone.embed_dim=16",
    "model.backbone.depth=1",
    "model.backbone.num_heads=2",
    "model.backbone.decoder_embed_dim=16",
    "model.backbone.decoder_depth=1",
    "model.backbone.decoder_num_heads=2",
    "data.chip_size=8",
]
# lr=10: a z0 step of lr·1e-6·grad must stand far above the float64 resolution of a row of size 0.02.
SGD = ["model.optimizer._target_=torch.optim.SGD", "~model.optimizer.betas", "model.optimizer.lr=10.0"]
LEVELS = [0, 5, 10, 15]


def random_points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lat = (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1) * MERCATOR_MAX_LAT
    lon = 360 * torch.rand(n, generator=g, dtype=torch.float64) - 180
    return lat, lon


def tiny_module(make_cfg, overrides: list[str]) -> MAELightningModule:
    cfg = make_cfg([*overrides, *TINY_MODEL])
    torch.manual_seed(0)  # the same initial weights for a run and its unscaled twin
    module = build_module(cfg)
    return module.double()


def one_step(module: MAELightningModule, batch: dict) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    """One optimizer step through the module's own configure_optimizers; the change of each level's table."""
    optimizer = module.configure_optimizers()["optimizer"]
    tables = [t.embedding.weight for t in module.encoding.tables]
    before = [w.detach().clone() for w in tables]
    optimizer.zero_grad()
    module(batch, generator=torch.Generator().manual_seed(1)).backward()
    optimizer.step()
    return optimizer, [w.detach() - b for w, b in zip(tables, before, strict=True)]


def mae_batch(n: int = 8) -> dict:
    lat, lon = random_points(n, seed=5)
    image = torch.randn(n, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return {"image": image, "lat": lat, "lon": lon}


def touched_rows(module: MAELightningModule, batch: dict) -> list[torch.Tensor]:
    enc = module.encoding
    chain = enc.tile_indices(batch["lat"], batch["lon"])
    return [torch.unique(t.rows(*chain[t.zoom])) for t in enc.tables]


# -- tile chain ------------------------------------------------------------------------------------
def test_tile_chain_matches_mercantile_with_poles_and_antimeridian(edge_coordinates):
    enc = HierarchicalTileEncoding(levels=[0, 5, 10, 15, 20], dim_per_level=2, max_rows=16)
    lat, lon = random_points(400, seed=1)
    lat, lon = torch.cat([edge_coordinates[0], lat]), torch.cat([edge_coordinates[1], lon])
    chain = enc.tile_indices(lat, lon)
    for i in range(len(lat)):
        wrapped = ((float(lon[i]) + 180.0) % 360.0) - 180.0
        clamped = max(-MERCATOR_MAX_LAT, min(MERCATOR_MAX_LAT, float(lat[i])))
        tile = mercantile.tile(wrapped, clamped, 20)
        for z in (0, 5, 10, 15, 20):
            parent = mercantile.parent(tile, zoom=z) if z < 20 else tile
            parent = parent or mercantile.Tile(0, 0, 0)  # mercantile has no parent at z0
            assert (int(chain[z][0][i]), int(chain[z][1][i])) == (parent.x, parent.y), (i, z)


# -- tables ----------------------------------------------------------------------------------------
def test_hashed_lookup_equals_dense_lookup_once_rows_are_placed():
    """A hashed table holding a dense table's rows at hash(x, y, z) gives the same vectors (no collision)."""
    torch.manual_seed(0)
    dense = HierarchicalTileEncoding(levels=[0, 4, 8], dim_per_level=3, max_rows=4**8)
    hashed = HierarchicalTileEncoding(levels=[0, 4, 8], dim_per_level=3, max_rows=4**5)
    assert [t.hashed for t in dense.tables] == [False, False, False]
    assert [t.hashed for t in hashed.tables] == [False, False, True]
    lat, lon = random_points(20, seed=3)
    x, y = dense.tile_indices(lat, lon)[8]
    dense_rows = y * 2**8 + x
    hashed_rows = hash_ints(dense_rows) % 4**5
    assert torch.equal(hashed.tables[2].rows(x, y), hashed_rows)
    assert torch.equal(dense.tables[2].rows(x, y), dense_rows)
    assert len(torch.unique(hashed_rows)) == len(torch.unique(dense_rows))  # no collision among these
    with torch.no_grad():
        for k in (0, 1):
            hashed.tables[k].embedding.weight.copy_(dense.tables[k].embedding.weight)
        hashed.tables[2].embedding.weight[hashed_rows] = dense.tables[2].embedding.weight[dense_rows]
    batch = {"lat": lat, "lon": lon}
    assert torch.equal(hashed(batch), dense(batch))


def test_collision_rate_on_uniform_points_matches_the_formula():
    enc = HierarchicalTileEncoding(levels=[0, 5, 20], dim_per_level=1, max_rows=2**16)
    lat, lon = random_points(20_000, seed=4)
    measured = enc.collision_rates(lat, lon)
    x, y = enc.tile_indices(lat, lon)[20]
    distinct = len(torch.unique(torch.stack([x, y], dim=-1), dim=0))
    expected = enc.expected_collision_rate(distinct, 2**16)
    assert measured[0] == measured[5] == 0.0  # dense levels never collide
    assert expected == pytest.approx(0.263, abs=0.005)  # ≈ 20000 / 65536 tiles, minus double counting
    assert measured[20] == pytest.approx(expected, abs=0.015)


def test_parameter_memory_is_flat_beyond_the_dense_limit():
    counts = []
    for max_zoom in (15, 20, 24):
        enc = HierarchicalTileEncoding(levels=[0, 5, 10, max_zoom], dim_per_level=2, max_rows=2**12)
        counts.append(sum(p.numel() for p in enc.parameters()))
    assert counts == [2 * (1 + 4**5 + 2 * 2**12)] * 3


def test_deep_hashed_levels_are_finite_at_poles_and_antimeridian():
    enc = HierarchicalTileEncoding(levels=[0, 10, 24], max_zoom=24, dim_per_level=4, max_rows=2**10)
    lat = torch.tensor([90.0, -90.0, 0.0, 0.0, 45.0, 45.0], dtype=torch.float64)
    lon = torch.tensor([0.0, 0.0, 180.0, -180.0, 180.0, -180.0], dtype=torch.float64)
    out = enc({"lat": lat, "lon": lon})
    assert torch.isfinite(out).all()
    assert torch.equal(out[2], out[3]) and torch.equal(out[4], out[5])  # ±180 is one meridian


# -- options ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"share_scaling": "area"}, r"share_scaling='area' is not one of \['none', 'count', 'sqrt_count', "),
        ({"share_via": "optimizer"}, r"share_via='optimizer' is not one of \['lr', 'grad'\]"),
        ({"share_init": "batch_count"}, r"share_init='batch_count' is not one of \['none', 'count', "),
        ({"share_floor": 0.0}, r"share_floor=0.0 must be in \(0, 1\]"),
        ({"share_floor": 2}, r"share_floor=2 must be in \(0, 1\]"),
        ({"max_rows": 0}, "max_rows=0 must be an integer >= 1"),
        ({"levels": [0, 10, 5]}, r"levels=\[0, 10, 5\] must be strictly increasing"),
        ({"levels": [0, 16], "max_zoom": 15}, "above max_zoom=15"),
        ({"combine": "mean"}, r"combine='mean' is not one of \['concat', 'sum'\]"),
        ({"init_std": -0.1}, r"init_std=-0.1 must be >= 0"),
    ],
)
def test_bad_options_name_the_value_and_the_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalTileEncoding(**kwargs)


def test_zero_init_keeps_unseen_tiles_neutral_and_still_learns():
    enc = HierarchicalTileEncoding(levels=[0, 3, 6], max_zoom=6, dim_per_level=4, init_std=0.0)
    lat, lon = torch.tensor([10.0, -40.0]), torch.tensor([20.0, 100.0])
    assert float(enc.encode(lat, lon).abs().max()) == 0.0
    proj = torch.nn.Linear(enc.out_dim, 3)  # the model's projection, as in the MAE
    opt = torch.optim.SGD([*enc.parameters(), *proj.parameters()], lr=0.5)
    (proj(enc.encode(lat[:1], lon[:1])) - 1.0).pow(2).sum().backward()
    opt.step()
    touched, untouched = enc.encode(lat[:1], lon[:1]), enc.encode(lat[1:], lon[1:])
    assert float(touched.abs().min()) > 0  # every level of the trained chip's chain moved
    assert float(untouched[:, 4:].abs().max()) == 0.0  # the other chip's z3 and z6 rows: still zero
    assert float(untouched[:, :4].abs().max()) > 0  # ... but it shares the trained z0 row


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("count", [1e-6, 1e-6, 4.0**-5, 1.0]),  # 4^-15 and 4^-10 are below the floor
        ("sqrt_count", [2.0**-15, 2.0**-10, 2.0**-5, 1.0]),
        ("none", [1.0] * 4),
        ("batch_count", [1.0] * 4),  # per row and batch, not per level
    ],
)
def test_level_factors(rule, expected):
    enc = HierarchicalTileEncoding(levels=LEVELS, share_scaling=rule, dim_per_level=1, max_rows=16)
    assert enc.share_factors == pytest.approx(expected, rel=1e-12)
    assert level_share_factor("count", 0, 15, 1e-12) == pytest.approx(4.0**-15)


def test_share_init_scales_the_initial_rows():
    enc = HierarchicalTileEncoding(levels=[3, 5], max_zoom=5, dim_per_level=64, share_init="sqrt_count")
    plain = HierarchicalTileEncoding(levels=[3, 5], max_zoom=5, dim_per_level=64)
    stds = [t.embedding.weight.std().item() for t in enc.tables]
    plain_stds = [t.embedding.weight.std().item() for t in plain.tables]
    assert stds[0] / plain_stds[0] == pytest.approx(0.25, rel=0.05)  # 2^-(5-3)
    assert stds[1] / plain_stds[1] == pytest.approx(1.0, rel=0.05)


# -- update sizes through the real module ----------------------------------------------------------
@pytest.mark.parametrize("rule", ["count", "sqrt_count"])
def test_adamw_step_via_lr_is_the_level_factor_times_the_unscaled_step(make_cfg, rule):
    batch = mae_batch()
    scaled = tiny_module(make_cfg, ["encoding=hierarchical", f"encoding.share_scaling={rule}"])
    twin = tiny_module(make_cfg, ["encoding=hierarchical_plain"])
    optimizer, steps = one_step(scaled, batch)
    _, twin_steps = one_step(twin, batch)
    assert isinstance(optimizer, torch.optim.AdamW)
    base_lr = make_cfg(TINY_MODEL).model.optimizer.lr
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    for z, rows, step, twin_step in zip(LEVELS, touched_rows(scaled, batch), steps, twin_steps, strict=True):
        factor = max(1e-6, (4.0 if rule == "count" else 2.0) ** -(15 - z))
        assert lrs[f"encoding/z{z:02d}"] == pytest.approx(base_lr * factor, rel=1e-12)
        assert twin_step[rows].abs().min() > 0  # every touched row moved in the twin
        torch.testing.assert_close(step[rows], factor * twin_step[rows], rtol=1e-6, atol=0)
        untouched = torch.ones(len(step), dtype=torch.bool)
        untouched[rows] = False
        assert torch.all(step[untouched] == 0)


def test_sgd_step_via_grad_is_the_level_factor_times_the_unscaled_step(make_cfg):
    batch = mae_batch()
    scaled = tiny_module(make_cfg, ["encoding=hierarchical", "encoding.share_via=grad", *SGD])
    twin = tiny_module(make_cfg, ["encoding=hierarchical_plain", *SGD])
    optimizer, steps = one_step(scaled, batch)
    _, twin_steps = one_step(twin, batch)
    assert isinstance(optimizer, torch.optim.SGD)
    assert {g["lr"] for g in optimizer.param_groups} == {10.0}
    for z, rows, step, twin_step in zip(LEVELS, touched_rows(scaled, batch), steps, twin_steps, strict=True):
        factor = max(1e-6, 4.0 ** -(15 - z))
        assert twin_step[rows].abs().min() > 0
        torch.testing.assert_close(step[rows], factor * twin_step[rows], rtol=1e-6, atol=0)


def test_adam_pitfall_gradient_factor_cancels(make_cfg, caplog):
    """share_via=grad under AdamW: the z10 row (factor 2^-5) moves as far as unscaled; a warning says so."""
    batch = mae_batch()
    overrides = ["encoding=hierarchical", "encoding.share_scaling=sqrt_count", "encoding.share_via=grad"]
    scaled = tiny_module(make_cfg, overrides)
    twin = tiny_module(make_cfg, ["encoding=hierarchical_plain"])
    with caplog.at_level(logging.WARNING):
        _, steps = one_step(scaled, batch)
    assert any("share_via='grad' with AdamW" in r.getMessage() for r in caplog.records)
    _, twin_steps = one_step(twin, batch)
    rows = touched_rows(scaled, batch)[2]
    ratio = steps[2][rows].norm() / twin_steps[2][rows].norm()
    assert ratio == pytest.approx(1.0, abs=0.02)  # not 2^-5 = 0.031 (Adam's eps keeps it just below 1)


# -- batch_count on a hand-built batch -------------------------------------------------------------
# Two chips in one z15 tile in Paris, one more in Paris' z5 tile only, two in Sydney's z10 tile.
HAND_LAT = torch.tensor([48.85660, 48.85665, 48.0, -33.86, -33.87], dtype=torch.float64)
HAND_LON = torch.tensor([2.35220, 2.35225, 3.0, 151.21, 151.25], dtype=torch.float64)
HAND_COUNTS = {  # per level, how many chips of the batch share each chip's tile
    0: [5, 5, 5, 5, 5],
    5: [3, 3, 3, 2, 2],
    10: [2, 2, 1, 2, 2],
    15: [2, 2, 1, 1, 1],
}


def hand_encodings(**kwargs) -> tuple[HierarchicalTileEncoding, HierarchicalTileEncoding]:
    pair = []
    for scaling in ("batch_count", "none"):
        torch.manual_seed(0)
        pair.append(HierarchicalTileEncoding(levels=LEVELS, dim_per_level=3, share_scaling=scaling, **kwargs))
    return pair[0].double(), pair[1].double()


def hand_objective(enc: HierarchicalTileEncoding) -> torch.Tensor:
    weights = torch.randn(5, enc.out_dim, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    return (enc({"lat": HAND_LAT, "lon": HAND_LON}) * weights).sum()


def test_hand_built_batch_counts_match_mercantile():
    tiles = [mercantile.tile(float(lo), float(la), 15) for la, lo in zip(HAND_LAT, HAND_LON, strict=True)]
    for z, counts in HAND_COUNTS.items():
        parents = [mercantile.parent(t, zoom=z) if z < 15 else t for t in tiles]
        assert [parents.count(p) for p in parents] == counts
    enc, _ = hand_encodings()
    chain = enc.tile_indices(HAND_LAT, HAND_LON)
    for table in enc.tables:
        rows = table.rows(*chain[table.zoom])
        assert table.row_counts(rows, torch.float64).tolist() == HAND_COUNTS[table.zoom]


def test_batch_count_via_grad_makes_each_row_gradient_the_mean_of_its_chips():
    enc, twin = hand_encodings(share_via="grad")
    hand_objective(enc).backward()
    hand_objective(twin).backward()
    chain = enc.tile_indices(HAND_LAT, HAND_LON)
    for table, twin_table in zip(enc.tables, twin.tables, strict=True):
        rows = table.rows(*chain[table.zoom])
        counts = torch.tensor(HAND_COUNTS[table.zoom], dtype=torch.float64)[:, None]
        grad, twin_grad = table.embedding.weight.grad, twin_table.embedding.weight.grad
        torch.testing.assert_close(grad[rows], twin_grad[rows] / counts, rtol=1e-12, atol=0)
    # so one SGD step on a row is the unscaled step divided by its count
    before = enc.tables[1].embedding.weight.detach().clone()
    torch.optim.SGD(enc.parameters(), lr=0.1).step()
    rows = enc.tables[1].rows(*chain[5])
    expected = -0.1 * twin.tables[1].embedding.weight.grad[rows] / torch.tensor([[3.0], [3], [3], [2], [2]])
    torch.testing.assert_close(enc.tables[1].embedding.weight[rows] - before[rows], expected.double())


def test_batch_count_via_lr_divides_each_adamw_row_update_by_its_count():
    enc, twin = hand_encodings(share_via="lr")
    optimizers = []
    for e in (enc, twin):
        optimizer = torch.optim.AdamW(e.param_groups())  # batch_count: every lr_scale is 1
        e.attach_optimizer(optimizer)
        optimizers.append(optimizer)
    before = [t.embedding.weight.detach().clone() for t in enc.tables]
    for e, optimizer in zip((enc, twin), optimizers, strict=True):
        hand_objective(e).backward()
        optimizer.step()
    chain = enc.tile_indices(HAND_LAT, HAND_LON)
    for table, twin_table, start in zip(enc.tables, twin.tables, before, strict=True):
        rows = table.rows(*chain[table.zoom])
        counts = torch.tensor(HAND_COUNTS[table.zoom], dtype=torch.float64)[:, None]
        step = table.embedding.weight.detach() - start
        twin_step = twin_table.embedding.weight.detach() - start
        assert twin_step[rows].abs().min() > 0
        torch.testing.assert_close(step[rows], twin_step[rows] / counts, rtol=1e-6, atol=0)
        others = torch.ones(table.num_rows, dtype=torch.bool)
        others[rows] = False
        assert torch.all(step[others] == 0)
    # Adam's moments saw the full gradient: the next step's statistics are those of the twin.
    state, twin_state = optimizers[0].state, optimizers[1].state
    for p, q in zip(enc.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(state[p]["exp_avg"], twin_state[q]["exp_avg"])


def test_batch_count_via_lr_needs_the_optimizer_hook():
    enc, _ = hand_encodings(share_via="lr")
    with pytest.raises(RuntimeError, match="attach_optimizer"):
        hand_objective(enc)
    with torch.no_grad():  # evaluation needs no optimizer
        assert enc({"lat": HAND_LAT, "lon": HAND_LON}).shape == (5, 12)


# -- diagnostics -----------------------------------------------------------------------------------
def test_diagnostics_report_row_and_update_norms_of_the_touched_rows(make_cfg):
    batch = mae_batch()
    module = tiny_module(make_cfg, ["encoding=hierarchical"])
    assert module.encoding.diagnostics() == {}  # nothing stepped yet
    before = [t.embedding.weight.detach().clone() for t in module.encoding.tables]
    _, steps = one_step(module, batch)
    stats = module.encoding.diagnostics()
    assert set(stats) == {f"z{z:02d}/{k}" for z in LEVELS for k in ("row_norm", "update_norm")}
    for z, rows, step, start in zip(LEVELS, touched_rows(module, batch), steps, before, strict=True):
        assert stats[f"z{z:02d}/update_norm"] == pytest.approx(float(step[rows].norm(dim=1).mean()), rel=1e-9)
        after = start[rows] + step[rows]
        assert stats[f"z{z:02d}/row_norm"] == pytest.approx(float(after.norm(dim=1).mean()), rel=1e-9)
    # the proposal at work: z0 moves a million times less than the chip's own tile
    assert stats["z00/update_norm"] < 1e-5 * stats["z15/update_norm"]
    assert math.isfinite(stats["z00/row_norm"]) and stats["z00/row_norm"] > 0


# -- the fused kernel for the tables -----------------------------------------------------------------
def test_tables_take_the_fused_kernel_and_clipping_still_works_in_mixed_precision(make_cfg, tmp_path):
    module = tiny_module(make_cfg, ["encoding=hierarchical"])
    groups = {g["name"]: g for g in module.configure_optimizers()["optimizer"].param_groups}
    assert all(groups[f"encoding/z{z:02d}"]["fused"] for z in LEVELS)
    assert not groups["backbone"]["fused"]  # the optimizer as a whole is not fused ...
    # ... so Lightning's gradient clipping under mixed precision (which refuses fused optimizers) runs
    cfg = make_cfg(
        ["encoding=hierarchical", "trainer.precision=bf16-mixed", "trainer.fast_dev_run=true", *TINY_MODEL]
    )
    assert train(cfg).status == "completed"
