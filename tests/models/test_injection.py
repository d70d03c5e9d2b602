"""The four injections: Clay v1's packing (values checked against numbers worked out by hand), its
dropout, which encodings are projected, FiLM's zero start, and the early errors."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed

from clay_exp.catalog import build_encoding
from clay_exp.data.time import clay_v1_time
from clay_exp.encodings.sincos import SinCosEncoding
from clay_exp.models.injection import INJECTION_CHOICES
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.module import MAELightningModule
from tests.helpers import small_mae

R2 = 0.7071067811865476  # sqrt(2)/2
R3 = 0.8660254037844386  # sqrt(3)/2


def small(**kwargs) -> MaskedAutoencoderViT:
    return small_mae(**({"depth": 2, "decoder_embed_dim": 24} | kwargs))


def module(encoding, **backbone) -> MAELightningModule:
    args = dict(
        img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=1, num_heads=2,
        decoder_embed_dim=24, decoder_depth=1, decoder_num_heads=2,
    )  # fmt: skip
    args.update(backbone)
    return MAELightningModule(
        encoding=encoding,
        backbone=functools.partial(MaskedAutoencoderViT, **args),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
    )


# Two chips: (lat 30°, lon -60°, ISO week 26, 18:00) and (lat -45°, lon 180°, week 13, 03:00).
LAT = torch.tensor([30.0, -45.0])
LON = torch.tensor([-60.0, 180.0])
WEEK = torch.tensor([26, 13])
HOUR = torch.tensor([18, 3])
# By hand: week 26 -> 2π·26/52 = π, hour 18 -> 2π·18/24 = 3π/2; week 13 -> π/2, hour 3 -> π/4.
# Clay's order: [sin w, cos w, sin h, cos h] then [sin φ, cos φ, sin λ, cos λ].
EXPECTED_LAST_8 = torch.tensor(
    [
        [0.0, -1.0, -1.0, 0.0, 0.5, R3, -R3, 0.5],
        [1.0, 0.0, R2, R2, -R2, R2, 0.0, -1.0],
    ]
)


def test_clay_v1_time_features_by_hand():
    expected = torch.tensor([[0.0, -1.0, -1.0, 0.0], [1.0, 0.0, R2, R2]])
    torch.testing.assert_close(clay_v1_time(WEEK, HOUR), expected, atol=1e-7, rtol=0)


def test_clay_v1_packs_time_and_location_into_the_last_8_dims():
    enc = SinCosEncoding()
    m = small(injection="clay_v1", location_dim=4, location_is_clay_latlon=enc.clay_v1_latlon).eval()
    assert m.injection.proj is None  # sincos goes in unprojected
    loc = enc({"lat": LAT, "lon": LON})
    pos = m.position_encoding(loc, 2, time=clay_v1_time(WEEK, HOUR))
    assert pos.shape == (2, 16, 32)
    timm_pos = build_sincos2d_pos_embed([4, 4], 32 - 8)
    for b in range(2):
        torch.testing.assert_close(pos[b, :, :-8], timm_pos, atol=0, rtol=0)
        torch.testing.assert_close(pos[b, :, -8:], EXPECTED_LAST_8[b].expand(16, 8), atol=1e-6, rtol=0)
    # the decoder's positions carry the same 8 values (Clay v1's Decoder does the same)
    cond = m.condition(loc, 2, clay_v1_time(WEEK, HOUR))
    dec = m.injection.decoder_positions(cond)
    assert dec.shape == (2, 16, 24)
    torch.testing.assert_close(dec[:, :, :-8], build_sincos2d_pos_embed([4, 4], 16).expand(2, -1, -1))
    torch.testing.assert_close(
        dec[:, :, -8:], EXPECTED_LAST_8[:, None, :].expand(-1, 16, -1), atol=1e-6, rtol=0
    )


def test_clay_v1_positions_are_what_the_encoder_adds_before_masking(monkeypatch):
    m = small(injection="clay_v1", location_dim=4, location_is_clay_latlon=True).eval()
    img = torch.randn(2, 3, 16, 16)
    loc = SinCosEncoding()({"lat": LAT, "lon": LON})
    seen = {}
    masking = m.random_masking

    def spy(x, generator=None):
        seen["x"] = x
        return masking(x, generator)

    monkeypatch.setattr(m, "random_masking", spy)
    m(img, loc, time=clay_v1_time(WEEK, HOUR))
    torch.testing.assert_close(
        seen["x"], m.patch_embed(img) + m.position_encoding(loc, 2, clay_v1_time(WEEK, HOUR))
    )


def test_clay_v1_without_time_or_location_gives_zeros():
    m = small(injection="clay_v1", location_dim=0).eval()
    pos = m.position_encoding(None, 3)
    assert pos.shape == (3, 16, 32) and torch.equal(pos[..., -8:], torch.zeros(3, 16, 8))
    m4 = small(injection="clay_v1", location_dim=4, location_is_clay_latlon=True).eval()
    pos = m4.position_encoding(SinCosEncoding()({"lat": LAT, "lon": LON}), 2)
    assert torch.equal(pos[..., -8:-4], torch.zeros(2, 16, 4))  # no time in the batch
    torch.testing.assert_close(pos[:, 0, -4:], EXPECTED_LAST_8[:, 4:], atol=1e-6, rtol=0)


def _dropped(m, n, generator=None):
    lat = torch.rand(n, generator=torch.Generator().manual_seed(1)) * 170 - 85
    lon = torch.rand(n, generator=torch.Generator().manual_seed(2)) * 360 - 180
    loc = SinCosEncoding()({"lat": lat, "lon": lon})
    time = clay_v1_time(torch.randint(1, 53, (n,)), torch.randint(0, 24, (n,)))
    pos = m.position_encoding(loc, n, time, generator=generator)
    last = pos[:, :, -8:]
    dropped = (last == 0).all(dim=-1).all(dim=-1)
    # the kept chips carry their full 8 values, the dropped ones zeros in all 8 (cos φ > 0 off the
    # poles, so no kept chip is all zeros)
    training = m.training
    full = m.eval().position_encoding(loc, n, time)[:, :, -8:]
    m.train(training)
    assert not (full == 0).all(dim=-1).any()
    torch.testing.assert_close(last, full * (~dropped).float()[:, None, None], atol=0, rtol=0)
    # the positions themselves are never touched
    torch.testing.assert_close(pos[:, :, :-8], build_sincos2d_pos_embed([4, 4], 24).expand(n, -1, -1))
    return dropped


def test_clay_v1_dropout_share_training_only_and_reproducible():
    n = 4000
    m = small(injection="clay_v1", location_dim=4, location_is_clay_latlon=True, location_dropout=0.2)
    m.train()
    share = _dropped(m, n, torch.Generator().manual_seed(0)).float().mean().item()
    assert abs(share - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n), share  # 4 binomial standard deviations
    # the same seed drops the same chips; the global RNG (the one training masks with) too
    a = _dropped(m, n, torch.Generator().manual_seed(7))
    assert torch.equal(a, _dropped(m, n, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, _dropped(m, n, torch.Generator().manual_seed(8)))
    torch.manual_seed(3)
    b = _dropped(m, n)
    torch.manual_seed(3)
    assert torch.equal(b, _dropped(m, n))
    # validation never drops
    m.eval()
    assert not _dropped(m, n, torch.Generator().manual_seed(0)).any()
    # zero dropout never drops either
    m0 = small(
        injection="clay_v1", location_dim=4, location_is_clay_latlon=True, location_dropout=0.0
    ).train()
    assert not _dropped(m0, n, torch.Generator().manual_seed(0)).any()


def test_clay_v1_dropout_zeroes_decoder_positions_alike():
    m = small(injection="clay_v1", location_dim=4, location_is_clay_latlon=True, location_dropout=0.5).train()
    loc = SinCosEncoding()({"lat": torch.full((64,), 10.0), "lon": torch.full((64,), 20.0)})
    cond = m.condition(loc, 64, None, torch.Generator().manual_seed(0))
    dropped = (cond == 0).all(dim=-1)
    assert 0 < dropped.sum() < 64
    dec = m.injection.decoder_positions(cond)
    assert torch.equal((dec[:, :, -8:] == 0).all(-1).all(-1), dropped)


def test_sincos_is_unprojected_other_encodings_are_projected_and_learn():
    sincos = module(SinCosEncoding(), injection="clay_v1")
    inj = sincos.model.injection
    assert inj.projection == "identity" and inj.proj is None
    assert not any(isinstance(x, torch.nn.Linear) for x in inj.modules())
    assert sincos.model.location_parameters() == []
    # an explicit `linear` maps sincos through a learned Linear(4, 4) all the same (an ablation)
    assert (
        module(SinCosEncoding(), injection="clay_v1", location_projection="linear").model.injection.proj
        is not None
    )

    xyz = build_encoding("xyz")
    torch.manual_seed(0)
    mod = module(xyz, injection="clay_v1", location_dropout=0.0)
    inj = mod.model.injection
    assert inj.projection == "linear" and tuple(inj.proj.weight.shape) == (4, xyz.out_dim)
    counts = mod.parameter_counts()
    assert counts["encoding"] == sum(p.numel() for p in xyz.parameters()) + 4 * xyz.out_dim + 4
    batch = {"image": torch.randn(4, 3, 16, 16), "lat": LAT.repeat(2), "lon": LON.repeat(2)}
    mod(batch).backward()
    assert inj.proj.weight.grad.abs().sum() > 0
    enc_grads = [p.grad for p in xyz.parameters() if p.requires_grad]
    assert enc_grads and all(g is not None and g.abs().sum() > 0 for g in enc_grads)


def test_module_passes_the_batch_time_through():
    mod = module(SinCosEncoding(), injection="clay_v1").eval()
    batch = {"image": torch.randn(2, 3, 16, 16), "lat": LAT, "lon": LON}

    def loss(extra):
        return mod({**batch, **extra}, generator=torch.Generator().manual_seed(0)).item()

    without = loss({})
    assert loss({"time": torch.zeros(2, 4)}) == without
    assert loss({"time": clay_v1_time(WEEK, HOUR)}) != without
    with pytest.raises(ValueError, match=r"time must have shape \(2, 4\).*got \(2, 2\)"):
        loss({"time": torch.zeros(2, 2)})


def test_film_starts_as_the_plain_mae_and_learns():
    torch.manual_seed(0)
    film = small(injection="film", location_dim=5)
    plain = small(injection="add", location_dim=0)
    result = plain.load_state_dict(film.state_dict(), strict=False)
    assert not result.missing_keys and all(k.startswith("injection.") for k in result.unexpected_keys)
    assert {id(p) for p in film.location_parameters()} == {id(p) for p in film.injection.parameters()}
    assert len(film.location_parameters()) == 2 + 2 * 2  # proj + (γ, β) of each of the 2 blocks

    img = torch.randn(3, 3, 16, 16)
    loc = torch.randn(3, 5, requires_grad=True)
    out = film(img, loc, generator=torch.Generator().manual_seed(0))
    ref = plain(img, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.pred, ref.pred, atol=0, rtol=0)

    opt = torch.optim.SGD(film.parameters(), lr=0.1)
    out.loss.backward()
    for layer in film.injection.film:
        assert layer.weight.grad.abs().sum() > 0 and layer.bias.grad.abs().sum() > 0
    opt.step()
    opt.zero_grad()
    loc.grad = None
    out2 = film(img, loc, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out2.pred, ref.pred)
    out2.loss.backward()
    assert film.injection.proj.weight.grad.abs().sum() > 0  # after one step the location itself learns
    assert loc.grad.abs().sum() > 0
    # a different location now gives a different output
    out3 = film(img, loc.detach() + 1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(out2.pred, out3.pred)


def test_bad_settings_fail_early_naming_the_choices():
    assert INJECTION_CHOICES == ("add", "token", "clay_v1", "film")
    with pytest.raises(
        ValueError, match=r"injection='concat' is not one of \['add', 'token', 'clay_v1', 'film'\]"
    ):
        small(injection="concat")
    with pytest.raises(ValueError, match=r"embed_dim >= 12 .*got embed_dim=8"):
        small(injection="clay_v1", embed_dim=8)
    with pytest.raises(ValueError, match=r"embed_dim - 8 a multiple of 4.*got embed_dim=30"):
        small(injection="clay_v1", embed_dim=30)
    with pytest.raises(ValueError, match=r"decoder_embed_dim >= 12 .*got decoder_embed_dim=8"):
        small(injection="clay_v1", decoder_embed_dim=8)
    with pytest.raises(ValueError, match=r"positive multiple of 4, got embed_dim - 0 = 30"):
        small(injection="add", embed_dim=30)
    with pytest.raises(
        ValueError, match=r"location_projection='bogus' is not one of \['auto', 'linear', 'identity'\]"
    ):
        small(injection="clay_v1", location_projection="bogus")
    with pytest.raises(ValueError, match=r"'identity' packs .* into 4 dims, but the encoding gives 5"):
        small(injection="clay_v1", location_dim=5, location_projection="identity")
    with pytest.raises(ValueError, match=r"'identity' only works with injection=clay_v1"):
        small(injection="add", location_dim=4, location_projection="identity")
    with pytest.raises(ValueError, match=r"location_dropout=1.5 must lie in \[0, 1\]"):
        small(injection="clay_v1", location_dropout=1.5)
