"""wrap, cartesian3d, Space2Vec, Sphere2Vec, RFF and tile_lookup against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from pyproj import Proj

from clay_exp.catalog import build_encoding
from clay_exp.encodings.cartesian3d import Cartesian3DEncoding
from clay_exp.encodings.multiscale import geometric_radii, whole_cycles
from clay_exp.encodings.rff import RandomFourierFeaturesEncoding, equal_earth
from clay_exp.encodings.space2vec_grid import Space2VecGridEncoding
from clay_exp.encodings.space2vec_theory import Space2VecTheoryEncoding
from clay_exp.encodings.sphere2vec import Sphere2VecEncoding
from clay_exp.encodings.tile_lookup import TileLookupEncoding
from clay_exp.encodings.wrap import WrapEncoding

S3 = math.sqrt(3) / 2  # sin 60° = cos 30°
DEG = math.pi / 180
LAT, LON = torch.tensor([30.0], dtype=torch.float64), torch.tensor([60.0], dtype=torch.float64)


def close(actual: torch.Tensor, expected: list[float], atol: float = 1e-6) -> None:
    torch.testing.assert_close(
        actual.double().flatten(), torch.tensor(expected, dtype=torch.float64), atol=atol, rtol=0
    )


# -- wrap, cartesian3d -----------------------------------------------------------------------------
def test_wrap_features_closed_form():
    feats = WrapEncoding.features(torch.tensor([30.0, 0.0]), torch.tensor([90.0, 180.0]))
    close(feats[0], [1.0, 0.0, 0.5, S3])  # sin λ, cos λ, sin φ, cos φ
    close(feats[1], [0.0, -1.0, 0.0, 1.0])


def test_wrap_tells_the_poles_apart():
    # with φ/90 (the published wrap) sin(π φ/90) and cos(π φ/90) are equal at ±90°; in radians they are not
    feats = WrapEncoding.features(torch.tensor([90.0, -90.0]), torch.tensor([0.0, 0.0]))
    close(feats[:, 2], [1.0, -1.0])
    enc = WrapEncoding()
    out = enc({"lat": torch.tensor([90.0, -90.0]), "lon": torch.tensor([0.0, 0.0])})
    assert not torch.allclose(out[0], out[1])


def test_cartesian3d_unit_vectors():
    lat = torch.tensor([0.0, 0.0, 90.0, -45.0, 30.0])
    lon = torch.tensor([0.0, 90.0, 77.0, 180.0, 60.0])
    feats = Cartesian3DEncoding.features(lat, lon)
    h = math.sqrt(0.5)
    expected = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [-h, 0, -h], [S3 * 0.5, S3 * S3, 0.5]]
    close(feats, [v for row in expected for v in row])
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(5))


# -- the multi-scale helpers -----------------------------------------------------------------------
def test_geometric_radii():
    close(geometric_radii(3, 1.0, 100.0), [1.0, 10.0, 100.0], atol=1e-12)
    close(geometric_radii(1, 0.5, 2.0), [2.0])
    with pytest.raises(ValueError, match="r_min <= r_max"):
        geometric_radii(4, 2.0, 1.0)
    with pytest.raises(ValueError, match="num_scales=0"):
        geometric_radii(0, 1.0, 2.0)


def test_whole_cycles_rounds_to_nonzero_integers_per_period():
    freq = torch.tensor([57.2958, -2.4, 0.01, 0.0], dtype=torch.float64) * 2 * math.pi / 360
    cycles = whole_cycles(freq, 360.0) * 360 / (2 * math.pi)
    close(cycles, [57.0, -2.0, 1.0, 0.0], atol=1e-12)


# -- Space2Vec -------------------------------------------------------------------------------------
def test_space2vec_grid_published_form():
    enc = Space2VecGridEncoding(num_scales=2, r_min=1.0, r_max=10.0, periodic=False, num_layers=0)
    # radii 1°, 10°; sin/cos(coordinate in degrees / r), scale by scale, λ then φ
    expected = [math.sin(60), math.cos(60), math.sin(30), math.cos(30)]
    expected += [math.sin(6), math.cos(6), math.sin(3), math.cos(3)]
    close(enc.features(LAT, LON), expected)
    assert enc.out_dim == 8 == 4 * 2


def test_space2vec_grid_periodic_rounds_longitude_only():
    enc = Space2VecGridEncoding(num_scales=2, r_min=1.0, r_max=10.0, periodic=True, num_layers=0)
    # 1/r per degree = 360/(2π r) cycles per 360°: 57.3 -> 57 and 5.73 -> 6 cycles
    w57, w6 = 57 * 2 * math.pi / 360, 6 * 2 * math.pi / 360
    expected = [math.sin(60 * w57), math.cos(60 * w57), math.sin(30), math.cos(30)]
    expected += [math.sin(60 * w6), math.cos(60 * w6), math.sin(3), math.cos(3)]
    close(enc.features(LAT, LON), expected)


def test_space2vec_theory_published_form():
    enc = Space2VecTheoryEncoding(num_scales=2, r_min=1.0, r_max=10.0, periodic=False, num_layers=0)
    # projections of (λ, φ) = (60, 30) on 0°, 120°, 240°: 60, −30 + 30·√3/2, −30 − 30·√3/2
    projections = [60.0, -30 + 30 * S3, -30 - 30 * S3]
    expected = []
    for r in (1.0, 10.0):
        for p in projections:
            expected += [math.sin(p / r), math.cos(p / r)]
    close(enc.features(LAT, LON), expected)
    assert enc.out_dim == 12 == 6 * 2


def test_space2vec_theory_periodic_rounds_longitude_coefficients():
    enc = Space2VecTheoryEncoding(num_scales=2, r_min=1.0, r_max=10.0, periodic=True, num_layers=0)
    # longitude coefficients cos θ/r in cycles per 360°:
    # r = 1: 57.3 -> 57, −28.6 -> −29; r = 10: 5.7 -> 6, −2.9 -> −3
    cycle = 2 * math.pi / 360
    expected = []
    for r, (k0, k12) in ((1.0, (57, -29)), (10.0, (6, -3))):
        for k, lat_coef in ((k0, 0.0), (k12, S3), (k12, -S3)):
            angle = 60 * k * cycle + 30 * lat_coef / r
            expected += [math.sin(angle), math.cos(angle)]
    close(enc.features(LAT, LON), expected)


# -- Sphere2Vec ------------------------------------------------------------------------------------
# (φ, λ) = (30°, 60°) at radii 0.5 and 1: φ_s, λ_s = (60°, 120°), then (30°, 60°)
SPHERE2VEC_EXPECTED = {
    "sphereC": ([S3, -0.25, 0.5 * S3], [0.5, S3 * 0.5, S3 * S3]),
    "sphereC+": ([S3, 0.5, S3, -0.5, -0.25, 0.5 * S3], [0.5, S3, S3, 0.5, S3 * 0.5, S3 * S3]),
    # sin φ_s, cos φ_s cos λ, cos φ cos λ_s, cos φ_s sin λ, cos φ sin λ_s
    "sphereM": ([S3, 0.5 * 0.5, S3 * -0.5, 0.5 * S3, S3 * S3], [0.5, S3 * 0.5, S3 * 0.5, S3 * S3, S3 * S3]),
    "sphereM+": (
        [S3, 0.5, S3, -0.5, 0.25, -0.5 * S3, 0.5 * S3, 0.75],
        [0.5, S3, S3, 0.5, S3 * 0.5, S3 * 0.5, S3 * S3, S3 * S3],
    ),
}


@pytest.mark.parametrize("variant", list(SPHERE2VEC_EXPECTED))
def test_sphere2vec_published_formulas(variant):
    enc = Sphere2VecEncoding(variant=variant, num_scales=2, r_min=0.5, r_max=1.0, num_layers=0)
    features = enc.features(LAT, LON)
    assert enc.out_dim == {"sphereC": 3, "sphereC+": 6, "sphereM": 5, "sphereM+": 8}[variant] * 2
    small, large = SPHERE2VEC_EXPECTED[variant]
    close(features, [*small, *large])


def test_sphere2vec_single_scale_sphere_c_is_the_unit_vector():
    enc = Sphere2VecEncoding(variant="sphereC", num_scales=1, r_min=1.0, r_max=1.0, num_layers=0)
    lat, lon = torch.tensor([10.0, -70.0, 90.0]), torch.tensor([-100.0, 33.0, 5.0])
    xyz = Cartesian3DEncoding.features(lat, lon)
    torch.testing.assert_close(enc.features(lat, lon), xyz[:, [2, 0, 1]], atol=1e-6, rtol=0)


def test_sphere2vec_published_form_is_not_periodic_and_the_option_makes_it_so():
    lat, lon = torch.tensor([20.0, 20.0]), torch.tensor([180.0, -180.0])
    published = Sphere2VecEncoding(num_layers=0).features(lat, lon)
    assert (published[0] - published[1]).abs().max() > 0.1
    periodic = Sphere2VecEncoding(num_layers=0, periodic=True).features(lat, lon)
    torch.testing.assert_close(periodic[0], periodic[1], atol=1e-6, rtol=0)


def test_sphere2vec_bad_variant_lists_choices():
    with pytest.raises(ValueError, match=r"variant='sphereX'.*sphereC\+"):
        Sphere2VecEncoding(variant="sphereX")


# -- random Fourier features -----------------------------------------------------------------------
def test_equal_earth_matches_pyproj():
    lat = torch.tensor([0.0, 45.0, -60.0, 89.9, 0.0, 10.0], dtype=torch.float64)
    lon = torch.tensor([0.0, 90.0, -150.0, 10.0, 180.0, -180.0], dtype=torch.float64)
    x, y = Proj("+proj=eqearth +R=1")(lon.numpy(), lat.numpy())  # PROJ's Equal Earth on the unit sphere
    expected = torch.stack([torch.from_numpy(x), torch.from_numpy(y)], dim=-1)
    torch.testing.assert_close(equal_earth(lat, lon), expected, atol=1e-9, rtol=0)
    # the antimeridian by hand: x = 2√3 π / (3 A1)
    assert equal_earth(torch.tensor([0.0]), torch.tensor([180.0]))[0, 0].item() == pytest.approx(
        2 * math.sqrt(3) * math.pi / (3 * 1.340264)
    )


def test_rff_features_closed_form():
    enc = RandomFourierFeaturesEncoding(sigma=1.0, num_frequencies=2, num_layers=0)
    enc.branches[0].frequencies.copy_(torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64))
    v = torch.tensor([[0.25, 0.125]], dtype=torch.float64)
    # 2π B v = (π/2, 2π (0.125 + 0.25)) = (π/2, 3π/4); γ = [cos, cos, sin, sin]
    close(enc.branches[0].features(v), [0.0, -math.sqrt(0.5), 1.0, math.sqrt(0.5)])


def test_rff_frequencies_are_seeded_gaussians_of_scale_sigma():
    a = RandomFourierFeaturesEncoding(sigma=16.0, seed=3)
    b = RandomFourierFeaturesEncoding(sigma=16.0, seed=3)
    c = RandomFourierFeaturesEncoding(sigma=16.0, seed=4)
    fa = a.branches[0].frequencies
    assert fa.shape == (256, 2)
    assert torch.equal(fa, b.branches[0].frequencies) and not torch.equal(fa, c.branches[0].frequencies)
    assert fa.std().item() == pytest.approx(16.0, rel=0.15)
    assert "branches.0.frequencies" in a.state_dict()  # saved with checkpoints


def test_rff_seed_comes_from_the_run_seed():
    enc = build_encoding("rff", ["seed=7"])
    assert enc.seed == 7
    assert torch.equal(
        enc.branches[0].frequencies, RandomFourierFeaturesEncoding(seed=7).branches[0].frequencies
    )


def test_rff_multiscale_sums_one_branch_per_sigma():
    enc = build_encoding("rff_multiscale")
    assert enc.sigmas == [1.0, 16.0, 256.0] and len(enc.branches) == 3
    stds = [b.frequencies.std().item() for b in enc.branches]
    assert stds == pytest.approx([1.0, 16.0, 256.0], rel=0.15)
    lat, lon = torch.tensor([10.0, -40.0]), torch.tensor([20.0, 170.0])
    v = enc.coordinates(lat, lon)
    torch.testing.assert_close(enc({"lat": lat, "lon": lon}), sum(b(v) for b in enc.branches))


# -- tile_lookup -----------------------------------------------------------------------------------
def test_tile_lookup_applies_the_cell_size():
    enc = TileLookupEncoding(cell_size_deg=10.0, dim=4)
    assert (enc.num_lon, enc.num_lat, enc.table.num_embeddings) == (36, 18, 648)
    lat = torch.tensor([5.0, 9.9, 5.0, 11.0, -89.0, 90.0, 0.0, 0.0])
    lon = torch.tensor([5.0, 0.1, 11.0, 5.0, -179.0, 179.0, 180.0, -180.0])
    rows = enc.cell_index(lat, lon)
    # by hand: row = ⌊(φ+90)/10⌋·36 + ⌊(λ+180)/10⌋
    assert rows.tolist() == [
        9 * 36 + 18,
        9 * 36 + 18,
        9 * 36 + 19,
        10 * 36 + 18,
        0,
        17 * 36 + 35,
        9 * 36,
        9 * 36,
    ]
    out = enc({"lat": lat, "lon": lon})
    assert torch.equal(out[0], out[1])  # one cell, one row
    assert not torch.equal(out[0], out[2]) and not torch.equal(out[0], out[3])  # neighbouring cells
    assert torch.equal(out[6], out[7])  # λ = ±180° is one meridian
    torch.testing.assert_close(out, enc.table.weight[rows])


def test_tile_lookup_finer_cells_separate_what_coarse_cells_join():
    lat, lon = torch.tensor([1.0, 3.0]), torch.tensor([1.0, 1.0])
    coarse = TileLookupEncoding(cell_size_deg=5.0).cell_index(lat, lon)
    fine = TileLookupEncoding(cell_size_deg=1.0).cell_index(lat, lon)
    assert coarse[0] == coarse[1] and fine[0] != fine[1]


def test_tile_lookup_cell_size_not_dividing_the_globe():
    enc = TileLookupEncoding(cell_size_deg=7.0)
    assert (enc.num_lon, enc.num_lat) == (52, 26)  # the last column and row are narrower
    rows = enc.cell_index(torch.tensor([90.0, -90.0, 0.0]), torch.tensor([179.9, -180.0, 180.0]))
    assert rows.tolist() == [25 * 52 + 51, 0, 12 * 52]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"cell_size_deg": 0.0}, "cell_size_deg=0.0"), ({"cell_size_deg": 0.01}, "more than max_rows")],
)
def test_tile_lookup_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TileLookupEncoding(**kwargs)


# -- periodicity and the poles, for every encoding that claims them --------------------------------
PERIODIC = [
    ("sincos", []),
    ("wrap", []),
    ("cartesian3d", []),
    ("space2vec_grid", []),
    ("space2vec_theory", []),
    ("sphere2vec", ["encoding.periodic=true"]),
    *[
        ("sphere2vec", ["encoding.periodic=true", f"encoding.variant={v}"])
        for v in ("sphereC", "sphereM", "sphereM+")
    ],
    ("spherical_harmonics", []),
    ("spherical_harmonics", ["encoding.degrees=40", "encoding.head=linear"]),
    ("tile_lookup", []),
    ("xyz", []),
    ("hierarchical", []),
]


@pytest.mark.parametrize(("name", "overrides"), PERIODIC)
def test_antimeridian_gives_one_encoding(name, overrides):
    torch.manual_seed(0)
    enc = build_encoding(name, overrides)
    lat = torch.tensor([-90.0, -63.2, -1.0, 0.0, 17.5, 45.0, 84.0, 90.0], dtype=torch.float64)
    east = enc({"lat": lat, "lon": torch.full_like(lat, 180.0)})
    west = enc({"lat": lat, "lon": torch.full_like(lat, -180.0)})
    torch.testing.assert_close(east, west, atol=1e-5, rtol=0)
    assert not torch.allclose(east[2], east[5])  # and the encoding is not constant


@pytest.mark.parametrize(("name", "overrides"), [("cartesian3d", []), ("spherical_harmonics", [])])
def test_pole_is_one_point(name, overrides):
    torch.manual_seed(0)
    enc = build_encoding(name, overrides)
    lon = torch.tensor([-180.0, -90.0, 0.0, 45.0, 179.0])
    for pole in (90.0, -90.0):
        out = enc({"lat": torch.full_like(lon, pole), "lon": lon})
        torch.testing.assert_close(out, out[:1].expand_as(out), atol=1e-5, rtol=0)
