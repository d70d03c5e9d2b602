"""Every encoding config under configs/encoding/ honours the one interface (new ones are picked up)."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from clay_exp.config import config_options
from tests.helpers import build_or_skip

ENCODINGS = config_options("encoding")


@pytest.mark.parametrize("name", ENCODINGS)
def test_shape_dtype_finite_deterministic(name, edge_coordinates):
    torch.manual_seed(0)
    enc = build_or_skip(name)
    lat, lon = edge_coordinates
    batch = {"lat": lat, "lon": lon}
    out = enc(batch)
    assert out.shape == (lat.shape[0], enc.out_dim)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.equal(out, enc(batch))
    # float32 coordinates work too
    out32 = enc({"lat": lat.float(), "lon": lon.float()})
    assert out32.shape == out.shape and torch.isfinite(out32).all()


@pytest.mark.parametrize("name", ENCODINGS)
def test_gradients_reach_learnable_parameters(name, edge_coordinates):
    torch.manual_seed(0)
    enc = build_or_skip(name)
    params = [(n, p) for n, p in enc.named_parameters() if p.requires_grad]
    if not params:
        pytest.skip(f"{name} has no learnable parameters")
    lat, lon = edge_coordinates
    out = enc({"lat": lat, "lon": lon})
    (out * torch.randn_like(out)).sum().backward()
    for n, p in params:
        assert p.grad is not None, f"{name}: no gradient for {n}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient for {n}"


@pytest.mark.parametrize("name", ENCODINGS)
@pytest.mark.parametrize(
    ("lat", "lon", "bad"),
    [
        (91.0, 0.0, "lat=91.0"),
        (0.0, -180.5, "lon=-180.5"),
        (math.nan, 0.0, "lat=nan"),
        (0.0, math.inf, "lon=inf"),
    ],
)
def test_invalid_coordinates_raise_naming_value_and_chip(name, lat, lon, bad):
    enc = build_or_skip(name)
    lats = torch.tensor([0.0, 10.0, lat], dtype=torch.float64)
    lons = torch.tensor([0.0, 10.0, lon], dtype=torch.float64)
    with pytest.raises(ValueError, match=rf"chip 2 .*{bad}"):
        enc({"lat": lats, "lon": lons})


@pytest.mark.parametrize("name", ["xyz", "hierarchical"])
def test_mercator_clamp_is_logged_once(name, caplog):
    enc = build_or_skip(name)
    batch = {"lat": torch.tensor([89.0, -90.0]), "lon": torch.tensor([0.0, 0.0])}
    with caplog.at_level(logging.WARNING):
        enc(batch)
        enc(batch)
    messages = [r.getMessage() for r in caplog.records if "web-mercator limit" in r.getMessage()]
    assert len(messages) == 1
    # clamped: the same as at the limit itself
    limit = {"lat": torch.tensor([85.0511287798066, -85.0511287798066]), "lon": torch.tensor([0.0, 0.0])}
    assert torch.equal(enc(batch), enc(limit))


def test_missing_batch_key_is_named():
    enc = build_or_skip("sincos")
    with pytest.raises(KeyError, match="lon"):
        enc({"lat": torch.zeros(2)})
