"""Spherical harmonics against scipy's complex harmonics, orthonormality, finiteness to L = 100."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import roots_legendre, sph_harm_y

from clay_exp.encodings.spherical_harmonics import SphericalHarmonicsEncoding


def scipy_real_harmonics(lat_deg: np.ndarray, lon_deg: np.ndarray, degrees: int) -> np.ndarray:
    """The usual real basis from scipy's complex Y_l^m (with the Condon–Shortley phase): column l² + l + m.

    Y_l^m real = √2 (−1)^m Re Y_l^m (m > 0), Y_l^0 (m = 0), √2 (−1)^m Im Y_l^|m| (m < 0).
    """
    theta = np.pi / 2 - np.deg2rad(lat_deg)  # colatitude
    phi = np.deg2rad(lon_deg)
    out = np.zeros((lat_deg.shape[0], degrees * degrees))
    for l in range(degrees):  # noqa: E741 - the reference may loop; the encoder does not
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), theta, phi)
            if m > 0:
                value = math.sqrt(2) * (-1) ** m * y.real
            elif m < 0:
                value = math.sqrt(2) * (-1) ** m * y.imag
            else:
                value = y.real
            out[:, l * l + l + m] = value
    return out


def random_sphere_points(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lat = torch.rad2deg(torch.asin(2 * torch.rand(n, generator=g, dtype=torch.float64) - 1))
    lon = 360 * torch.rand(n, generator=g, dtype=torch.float64) - 180
    return lat, lon


@pytest.mark.parametrize("degrees", [1, 2, 10, 40])
def test_matches_scipy_real_harmonics(degrees, edge_coordinates):
    lat, lon = edge_coordinates  # poles, antimeridian, random points
    enc = SphericalHarmonicsEncoding(degrees=degrees, head="linear")
    expected = scipy_real_harmonics(lat.numpy(), lon.numpy(), degrees)
    out = enc({"lat": lat, "lon": lon})  # the encoding itself: float32
    assert out.shape == (lat.shape[0], degrees * degrees) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(enc.harmonics(lat, lon).numpy(), expected, atol=1e-12, rtol=0)


def test_low_degrees_closed_form():
    lat, lon = torch.tensor([30.0, -60.0, 90.0]), torch.tensor([45.0, 180.0, 0.0])
    y = SphericalHarmonicsEncoding(degrees=2, head="linear").harmonics(lat, lon)
    phi, lam = torch.deg2rad(lat.double()), torch.deg2rad(lon.double())
    c0, c1 = 1 / math.sqrt(4 * math.pi), math.sqrt(3 / (4 * math.pi))
    # real l = 1 harmonics are √(3/4π) (y, z, x) of the unit vector, ordered m = −1, 0, 1
    expected = torch.stack(
        [
            torch.full_like(phi, c0),
            c1 * phi.cos() * lam.sin(),
            c1 * phi.sin(),
            c1 * phi.cos() * lam.cos(),
        ],
        dim=-1,
    )
    torch.testing.assert_close(y, expected, atol=1e-12, rtol=0)


def test_m0_constant_is_not_pi_times_too_large():
    # The known fault: sqrt((2l+1)/4*pi) instead of sqrt((2l+1)/(4*pi)). At the north pole
    # P_l(1) = 1, so Y_l^0 there is exactly sqrt((2l+1)/(4π)).
    degrees = 12
    y = SphericalHarmonicsEncoding(degrees=degrees, head="linear").harmonics(
        torch.tensor([90.0]), torch.tensor([0.0])
    )[0]
    for l in range(degrees):  # noqa: E741
        assert y[l * l + l].item() == pytest.approx(math.sqrt((2 * l + 1) / (4 * math.pi)), rel=1e-12)


def weighted_gram(
    enc: SphericalHarmonicsEncoding,
    lat: torch.Tensor,
    lon: torch.Tensor,
    w: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """Σ_i w_i Y(x_i) Y(x_i)ᵀ over the chosen columns, in chunks (all L² columns of 20k points is 1.6 GB)."""
    gram = torch.zeros(len(columns), len(columns), dtype=torch.float64)
    for start in range(0, lat.shape[0], 2500):
        part = slice(start, start + 2500)
        y = enc.harmonics(lat[part], lon[part])
        assert torch.isfinite(y.T.sum())  # any NaN or inf makes the sum non-finite (quicker than isfinite)
        ys = y[:, columns]
        gram += ys.T @ (w[part, None] * ys)
    return gram


DEGREES_CHECKED = (0, 1, 7, 30, 64, 98, 99)


def test_finite_and_orthonormal_by_monte_carlo_at_degree_100():
    degrees, n = 100, 10000
    enc = SphericalHarmonicsEncoding(degrees=degrees, head="linear")
    poles = enc.harmonics(torch.tensor([90.0, -90.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 180.0, -180.0]))
    assert torch.isfinite(poles).all()
    lat, lon = random_sphere_points(n, seed=1)
    columns = torch.cat([torch.arange(d * d, (d + 1) ** 2) for d in DEGREES_CHECKED])
    gram = weighted_gram(enc, lat, lon, torch.full((n,), 4 * math.pi / n, dtype=torch.float64), columns)
    error = gram - torch.eye(len(columns), dtype=torch.float64)
    # Monte Carlo: identity up to sampling error, per entry about sqrt(E[(4π Y_i Y_j)²] / N) ≲ 2/√N = 0.02
    # (seen: max 0.07, mean 0.008; a wrong normalisation or a lost order is off by O(1))
    assert error.abs().max() < 0.15, error.abs().max()
    assert error.diagonal().abs().mean() < 0.03, error.diagonal().abs().mean()
    assert error.abs().mean() < 0.012, error.abs().mean()


def test_orthonormal_to_rounding_on_an_exact_quadrature_at_degree_100():
    # Gauss–Legendre nodes in sin φ × equally spaced λ integrate products of degree < 2L exactly,
    # so the Gram matrix is the identity to rounding error, not just to sampling error.
    degrees = 100
    nodes, weights = roots_legendre(degrees)
    lon_count = 2 * degrees
    lat = torch.rad2deg(torch.asin(torch.from_numpy(nodes))).repeat_interleave(lon_count)
    lon = (torch.arange(lon_count, dtype=torch.float64) * 360 / lon_count - 180).repeat(degrees)
    w = torch.from_numpy(weights).repeat_interleave(lon_count) * (2 * math.pi / lon_count)
    columns = torch.cat([torch.arange(d * d, (d + 1) ** 2) for d in DEGREES_CHECKED])
    gram = weighted_gram(SphericalHarmonicsEncoding(degrees=degrees, head="linear"), lat, lon, w, columns)
    torch.testing.assert_close(gram, torch.eye(len(columns), dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize(("head", "out_dim"), [("linear", 25), ("mlp", 32), ("siren", 32)])
def test_heads(head, out_dim):
    enc = SphericalHarmonicsEncoding(degrees=5, head=head, hidden_dim=32, num_layers=2)
    lat, lon = random_sphere_points(16, seed=2)
    out = enc({"lat": lat, "lon": lon})
    assert enc.out_dim == out_dim and out.shape == (16, out_dim)
    if head == "siren":
        first = enc.head[0]
        assert enc.head[1].w0 == 30.0 and enc.head[3].w0 == 1.0
        assert first.weight.abs().max() <= 1 / 25  # SIREN's first-layer init U(−1/in, 1/in)
        expected = torch.sin(30.0 * first(enc.harmonics(lat, lon, dtype=torch.float32)))
        torch.testing.assert_close(enc.head[:2](enc.harmonics(lat, lon, dtype=torch.float32)), expected)


def test_periodic_and_pole_independent_of_longitude():
    enc = SphericalHarmonicsEncoding(degrees=20, head="linear")
    y = enc.harmonics(torch.tensor([12.5, 12.5, 90.0, 90.0]), torch.tensor([180.0, -180.0, 0.0, 123.0]))
    torch.testing.assert_close(y[0], y[1], atol=1e-12, rtol=0)
    torch.testing.assert_close(y[2], y[3], atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"degrees": 0}, "degrees=0"), ({"head": "relu"}, r"head='relu'.*linear")]
)
def test_bad_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SphericalHarmonicsEncoding(**kwargs)
