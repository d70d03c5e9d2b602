import mercantile
import pytest
import torch

from clay_exp.tiles import MERCATOR_MAX_LAT, lonlat_to_tile, tile_chain, wrap_longitude


def _reference(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    lon = ((lon + 180.0) % 360.0) - 180.0
    lat = max(-MERCATOR_MAX_LAT, min(MERCATOR_MAX_LAT, lat))
    t = mercantile.tile(lon, lat, zoom)
    return t.x, t.y


def test_mercator_limit_matches_mercantile():
    assert pytest.approx(85.0511287798066, abs=1e-9) == MERCATOR_MAX_LAT
    assert mercantile.tile(0.0, MERCATOR_MAX_LAT, 10).y == 0


@pytest.mark.parametrize("zoom", [0, 1, 5, 10, 15, 20, 24])
def test_tiles_match_mercantile_on_random_and_edge_points(zoom, edge_coordinates):
    g = torch.Generator().manual_seed(zoom)
    lat = torch.cat([edge_coordinates[0], 180 * torch.rand(1500, generator=g, dtype=torch.float64) - 90])
    lon = torch.cat([edge_coordinates[1], 360 * torch.rand(1500, generator=g, dtype=torch.float64) - 180])
    x, y = lonlat_to_tile(lon, lat, zoom)
    expected = [_reference(float(a), float(b), zoom) for a, b in zip(lon, lat, strict=True)]
    assert x.tolist() == [e[0] for e in expected]
    assert y.tolist() == [e[1] for e in expected]


def test_antimeridian_is_one_meridian():
    lat = torch.tensor([10.0, 10.0], dtype=torch.float64)
    x, y = lonlat_to_tile(torch.tensor([180.0, -180.0], dtype=torch.float64), lat, 12)
    assert x[0] == x[1] == 0 and y[0] == y[1]
    assert wrap_longitude(torch.tensor([190.0, -190.0, 180.0])).tolist() == [-170.0, 170.0, -180.0]


def test_chain_parents_match_mercantile_parent(edge_coordinates):
    lat, lon = edge_coordinates
    chain = tile_chain(lon, lat, [0, 5, 10, 15])
    for i in range(len(lat)):
        t = mercantile.Tile(int(chain[15][0][i]), int(chain[15][1][i]), 15)
        for z in (0, 5, 10):
            p = mercantile.parent(t, zoom=z) if z < 15 else t
            p = p if p is not None else mercantile.Tile(0, 0, 0)
            assert (int(chain[z][0][i]), int(chain[z][1][i])) == (p.x, p.y)


def test_bad_zoom_is_rejected():
    with pytest.raises(ValueError, match="zoom=31"):
        lonlat_to_tile(torch.zeros(1), torch.zeros(1), 31)
    with pytest.raises(ValueError, match="zoom=-1"):
        lonlat_to_tile(torch.zeros(1), torch.zeros(1), -1)
