"""Closed-form checks of none / sincos / xyz / hierarchical."""

from __future__ import annotations

import math

import mercantile
import pytest
import torch

from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.encodings.none import NoEncoding
from clay_exp.encodings.sincos import SinCosEncoding
from clay_exp.encodings.xyz import XYZTileEncoding


def test_none_is_empty():
    out = NoEncoding()({"lat": torch.zeros(3), "lon": torch.zeros(3)})
    assert out.shape == (3, 0)


def test_sincos_closed_form():
    lat = torch.tensor([30.0, -60.0])
    lon = torch.tensor([90.0, 180.0])
    out = SinCosEncoding()({"lat": lat, "lon": lon})
    expected = torch.tensor(
        [[0.5, math.sqrt(3) / 2, 1.0, 0.0], [-math.sqrt(3) / 2, 0.5, 0.0, -1.0]], dtype=torch.float32
    )
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_xyz_features_are_the_mercantile_tile():
    enc = XYZTileEncoding(zoom=10)
    lat, lon = torch.tensor([48.8566]), torch.tensor([2.3522])  # Paris
    t = mercantile.tile(2.3522, 48.8566, 10)
    feats = enc.tile_features(lat, lon)
    n = 2**10
    torch.testing.assert_close(
        feats, torch.tensor([[(t.x + 0.5) / n * 2 - 1, (t.y + 0.5) / n * 2 - 1, 10 / 30]]), atol=1e-6, rtol=0
    )


def test_hierarchical_dense_rows_are_the_tiles():
    enc = HierarchicalTileEncoding(levels=[0, 2, 4], dim_per_level=3, max_rows=4**4)
    assert [t.hashed for t in enc.tables] == [False, False, False]
    assert [t.num_rows for t in enc.tables] == [1, 16, 256]
    lat, lon = torch.tensor([48.8566, -33.86]), torch.tensor([2.3522, 151.21])
    out = enc({"lat": lat, "lon": lon})
    assert out.shape == (2, 9) and enc.out_dim == 9
    for i in range(2):
        t = mercantile.tile(float(lon[i]), float(lat[i]), 4)
        for level, table in zip([0, 2, 4], enc.tables, strict=True):
            p = mercantile.parent(t, zoom=level) if level < 4 else t
            x, y = (p.x, p.y) if p is not None else (0, 0)
            row = table.embedding.weight[y * 2**level + x]
            k = [0, 2, 4].index(level)
            torch.testing.assert_close(out[i, 3 * k : 3 * k + 3], row)


def test_hierarchical_hashes_deep_levels_with_bounded_memory():
    small = HierarchicalTileEncoding(levels=[0, 5, 10, 15], max_rows=2**12, dim_per_level=4)
    deep = HierarchicalTileEncoding(levels=[0, 5, 10, 24], max_rows=2**12, dim_per_level=4)
    assert [t.hashed for t in deep.tables] == [False, False, True, True]
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small == sum(p.numel() for p in deep.parameters())
    out = deep({"lat": torch.tensor([10.0, 10.0001]), "lon": torch.tensor([20.0, 20.0])})
    assert torch.isfinite(out).all()


def test_hierarchical_sum_combine():
    enc = HierarchicalTileEncoding(levels=[0, 3], dim_per_level=5, combine="sum")
    out = enc({"lat": torch.tensor([1.0]), "lon": torch.tensor([1.0])})
    parts = enc.level_vectors(torch.tensor([1.0]), torch.tensor([1.0]))
    assert enc.out_dim == 5
    torch.testing.assert_close(out, parts[0] + parts[1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"levels": [5, 3]}, "strictly increasing"),
        ({"levels": [0, 5], "max_zoom": 4}, "above max_zoom=4"),
        ({"combine": "mean"}, "combine='mean'"),
        ({"max_rows": 0}, "max_rows=0"),
        ({"levels": [0, 5], "dim_per_level": [4]}, "one per level"),
        ({"levels": [0, 5], "dim_per_level": [4, 8], "combine": "sum"}, "same dim"),
    ],
)
def test_hierarchical_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalTileEncoding(**kwargs)


def test_collision_rate_formula():
    assert HierarchicalTileEncoding.expected_collision_rate(1, 10) == 0.0
    assert HierarchicalTileEncoding.expected_collision_rate(2, 2) == pytest.approx(0.5)
