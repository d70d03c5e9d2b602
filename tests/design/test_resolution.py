"""An encoding's resolution before training (clay_exp/design/resolution.py) against closed forms, and
scripts/floors.py on the real scenes: coverage of the chips' footprints and each arm's resolution."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from clay_exp.design.cli import main as floors_main
from clay_exp.design.resolution import KM_PER_DEGREE, offset, relative_change
from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.encodings.none import NoEncoding
from clay_exp.encodings.sincos import SinCosEncoding
from tests.helpers import scenes_root


class PlaneKm(nn.Module):
    """Kilometres east and north of (0°, 0°): near the equator, ‖f(p) − f(q)‖ is their distance."""

    def forward(self, batch):
        return torch.stack([batch["lon"] * KM_PER_DEGREE, batch["lat"] * KM_PER_DEGREE], dim=-1)


def places(n: int = 512, lat: float = 0.0, spread: float = 0.01, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return (
        lat + spread * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1),
        spread * (2 * torch.rand(n, generator=g, dtype=torch.float64) - 1),
    )


def haversine_km(lat1, lon1, lat2, lon2) -> torch.Tensor:
    p1, p2, dl = torch.deg2rad(lat1), torch.deg2rad(lat2), torch.deg2rad(lon2 - lon1)
    a = torch.sin((p2 - p1) / 2) ** 2 + torch.cos(p1) * torch.cos(p2) * torch.sin(dl / 2) ** 2
    return 2 * 6371.0 * torch.asin(a.sqrt())


def test_offset_moves_places_by_the_distance_asked():
    lat, lon = places(lat=52.5)
    bearing = torch.linspace(0, 2 * math.pi, len(lat), dtype=torch.float64)
    for km in (0.1, 1.0, 10.0):
        torch.testing.assert_close(
            haversine_km(lat, lon, *offset(lat, lon, km, bearing)),
            torch.full_like(lat, km),
            rtol=1e-3,
            atol=0,
        )


def test_relative_change_is_proportional_to_the_distance_on_a_plane():
    lat, lon = places()
    change = relative_change(PlaneKm(), lat, lon, [0.1, 1.0, 3.0])
    for km, value in change.items():  # every bearing moves the features by exactly km
        assert value / change[0.1] == pytest.approx(km / 0.1, rel=1e-6)
    spread = (
        2 * 0.01 * KM_PER_DEGREE * 0.5214
    )  # mean distance of two uniform points in a square of side 0.02°
    assert change[1.0] == pytest.approx(1.0 / spread, rel=0.1)


def test_coarse_and_fine_encoders_against_their_closed_forms():
    lat, lon = places(lat=37.7, spread=0.1)
    assert relative_change(NoEncoding(), lat, lon, [1.0]) == {1.0: 0.0}
    # sin/cos of degrees: the change grows linearly with the distance (d ≪ 40,000 km)
    sincos = relative_change(SinCosEncoding(), lat, lon, [1.0, 10.0])
    assert sincos[10.0] / sincos[1.0] == pytest.approx(10.0, rel=0.05) and sincos[1.0] < 0.1
    # a flat z15 table (tiles ~1 km here): places 10 km apart never share a row, as random pairs
    torch.manual_seed(0)
    table = HierarchicalTileEncoding(levels=[15], max_zoom=15, dim_per_level=16)
    fine = relative_change(table, lat, lon, [0.01, 10.0])
    assert fine[10.0] == pytest.approx(1.0, abs=0.1) and fine[0.01] < 0.05


def test_floors_cli_gives_coverage_and_resolution_on_the_scenes(tmp_path, capsys):
    root = scenes_root()
    out = tmp_path / "floors.json"
    overrides = [
        "data=scenes", f"data.root={root}", "data.cache=false", "data.split=region", "data.train_size=256",
        "data.val_size=64", "data.mean=[1000,1000,1000,1000]", "data.std=[500,500,500,500]",
        "encoding=sincos",
    ]  # fmt: skip
    assert floors_main([*overrides, "--zooms", "10", "14", "--resolution-km", "1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Floors need a generated world; data=scenes: coverage only." in printed
    result = json.loads(out.read_text())
    heldout = {c["zoom"]: c["val_seen"] for c in result["coverage"]["val_heldout"]}
    assert heldout[14] == 0.0 and heldout[10] == 1.0  # held-out z14 blocks, inside seen z10 tiles
    assert sum(c["occupied"] for c in result["coverage"]["val"] if c["zoom"] == 10) >= 2  # both scenes
    assert result["resolution"]["encoding"] == "sincos"
    assert 0 < result["resolution"]["relative_change"]["1.0"] < 0.01
