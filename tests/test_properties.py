"""Property tests (hypothesis): every encoding on any valid coordinates, and a clear error on any bad one."""

from __future__ import annotations

import math
import re
from functools import cache

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clay_exp.config import config_options
from clay_exp.encodings.base import SpatialEncoding
from clay_exp.tiles import MERCATOR_MAX_LAT
from tests.helpers import build_or_skip

ENCODINGS = config_options("encoding")
SPECIAL_LAT = [90.0, -90.0, MERCATOR_MAX_LAT, -MERCATOR_MAX_LAT, 0.0]
SPECIAL_LON = [180.0, -180.0, 0.0, 179.99999999, -179.99999999]
lats = st.floats(-90, 90, allow_nan=False) | st.sampled_from(SPECIAL_LAT)
lons = st.floats(-180, 180, allow_nan=False) | st.sampled_from(SPECIAL_LON)
coords = st.lists(st.tuples(lats, lons), min_size=1, max_size=12)
bad_values = (
    st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats(180.0001, 1e6) | st.floats(-1e6, -180.0001)
)


@cache
def encoder(name: str) -> SpatialEncoding:
    torch.manual_seed(0)
    return build_or_skip(name)


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=20, deadline=None)
@given(points=coords)
def test_any_valid_coordinates_give_finite_vectors(name, points):
    enc = encoder(name)
    lat = torch.tensor([p[0] for p in points], dtype=torch.float64)
    lon = torch.tensor([p[1] for p in points], dtype=torch.float64)
    with torch.no_grad():
        out = enc({"lat": lat, "lon": lon})
    assert out.shape == (len(points), enc.out_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ENCODINGS)
@settings(max_examples=15, deadline=None)
@given(points=coords, bad=bad_values, which=st.sampled_from(["lat", "lon"]), data=st.data())
def test_any_bad_coordinate_is_named(name, points, bad, which, data):
    if which == "lat" and math.isfinite(bad) and abs(bad) <= 90:
        bad = 90.5  # lat's own range is narrower
    position = data.draw(st.integers(0, len(points) - 1))
    lat = torch.tensor([p[0] for p in points], dtype=torch.float64)
    lon = torch.tensor([p[1] for p in points], dtype=torch.float64)
    (lat if which == "lat" else lon)[position] = bad
    with pytest.raises(ValueError, match=rf"chip {position} .*{which}={re.escape(repr(float(bad)))}"):
        encoder(name)({"lat": lat, "lon": lon})
