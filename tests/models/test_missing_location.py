"""A chip without a location, for every injection: `missing=zero|token|skip`, the location dropout
of every injection, the batch's `location_known` mask and NaN coordinates, and 100 % masking."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from clay_exp.encodings.sincos import SinCosEncoding
from clay_exp.models.injection import INJECTION_CHOICES, MISSING_CHOICES
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.module import MAELightningModule
from tests.helpers import small_mae

ALL = [(i, m) for i in INJECTION_CHOICES for m in MISSING_CHOICES]


def model(injection: str, missing: str = "zero", **kwargs) -> MaskedAutoencoderViT:
    torch.manual_seed(0)
    m = small_mae(injection=injection, missing=missing, location_dim=4, depth=2, decoder_depth=2, **kwargs)
    # FiLM starts as the plain MAE (γ = β = 0): give it some modulation, so that skipping it shows.
    if injection == "film":
        for layer in m.injection.film:
            torch.nn.init.normal_(layer.weight, std=0.2)
    return m.eval()


def run(m: MaskedAutoencoderViT, img, loc, known=None, seed: int = 0):
    return m(img, loc, generator=torch.Generator().manual_seed(seed), location_known=known)


IMG = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(1))
LOC = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
KNOWN = torch.tensor([True, False, True, True, False, False])


@pytest.mark.parametrize(("injection", "missing"), ALL)
def test_a_mixed_batch_gives_each_chip_what_it_gets_alone(injection, missing):
    # Same batch, same masks: the known chips' predictions are those of the all-known batch, the
    # others' those of the all-missing batch (for `token` + `skip`: through the attention mask).
    m = model(injection, missing)
    if m.injection.missing_token is not None:
        torch.nn.init.normal_(m.injection.missing_token)
    given = run(m, IMG, LOC).pred
    mixed = run(m, IMG, LOC, KNOWN).pred
    absent = run(m, IMG, LOC, torch.zeros(6, dtype=torch.bool)).pred
    torch.testing.assert_close(mixed[KNOWN], given[KNOWN], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[~KNOWN], absent[~KNOWN], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(given, absent, atol=1e-4)  # missing is not the same as given
    # every chip known: the plain path, bit for bit
    assert torch.equal(run(m, IMG, LOC, torch.ones(6, dtype=torch.bool)).pred, given)


@pytest.mark.parametrize("injection", ["add", "token", "film"])
def test_zero_is_the_location_vector_zeroed(injection):
    m = model(injection, "zero")
    absent = run(m, IMG, LOC, torch.zeros(6, dtype=torch.bool)).pred
    torch.testing.assert_close(absent, run(m, IMG, torch.zeros_like(LOC)).pred, atol=0, rtol=0)


def test_clay_v1_zero_and_skip_zero_all_eight_dims_as_its_dropout_does():
    for missing in ("zero", "skip"):
        m = model("clay_v1", missing)
        time = torch.randn(6, 4)
        cond = m.condition(LOC, 6, time, location_known=KNOWN)
        assert torch.equal(cond[~KNOWN], torch.zeros(3, 8))
        torch.testing.assert_close(cond[KNOWN], m.condition(LOC, 6, time)[KNOWN], atol=0, rtol=0)


def test_skip_adds_nothing_and_leaves_the_blocks_unmodulated():
    none = torch.zeros(6, dtype=torch.bool)
    add = model("add", "skip")
    cond = add.condition(LOC, 6, location_known=none)
    assert torch.equal(add.injection.encoder_positions(cond), add.injection.pos_embed.expand(6, -1, -1))
    film = model("film", "skip")
    cond = film.condition(LOC, 6, location_known=none)
    x = torch.randn(6, 5, 32)
    assert torch.equal(film.injection.after_block(0, x, cond), x)


def test_token_skip_changes_the_token_count():
    m = model("token", "skip")
    visible = int(16 * (1 - m.mask_ratio))
    latent, *_ = m.forward_encoder(IMG, LOC, torch.Generator().manual_seed(0))
    assert latent.shape[1] == visible + 1  # the location token in front of the visible patches
    latent, *_ = m.forward_encoder(
        IMG, LOC, torch.Generator().manual_seed(0), None, torch.zeros(6, dtype=bool)
    )
    assert latent.shape[1] == visible  # no chip has a location: no token
    # zero and token keep the token (a stand-in fills it)
    for missing in ("zero", "token"):
        other = model("token", missing)
        latent, *_ = other.forward_encoder(IMG, LOC, None, None, torch.zeros(6, dtype=torch.bool))
        assert latent.shape[1] == visible + 1


@pytest.mark.parametrize("injection", INJECTION_CHOICES)
def test_missing_token_stands_in_and_learns_from_dropped_chips(injection):
    m = model(injection, "token", location_dropout=0.5)
    token = m.injection.missing_token
    width = 4 if injection == "clay_v1" else 32
    assert token is not None and token.shape == (width,) and torch.equal(token, torch.zeros(width))
    assert any(p is token for p in m.location_parameters())  # counted with the location's parameters
    # it stands in for the location term of the missing chips
    torch.nn.init.normal_(token)
    cond = m.condition(LOC, 6, location_known=KNOWN)
    term = cond[:, 4:] if injection == "clay_v1" else cond.term
    torch.testing.assert_close(term[~KNOWN], token.detach().expand(3, -1), atol=0, rtol=0)
    with torch.no_grad():
        token.zero_()
    # training with dropout moves it off zero; without a missing chip it gets no gradient
    m.train()
    opt = torch.optim.Adam([token], lr=0.1)
    torch.manual_seed(0)
    for _ in range(3):
        opt.zero_grad()
        run(m, IMG, LOC).loss.backward()
        opt.step()
    assert token.detach().abs().sum() > 0
    m0 = model(injection, "token", location_dropout=0.0).train()
    run(m0, IMG, LOC).loss.backward()
    assert m0.injection.missing_token.grad is None or not m0.injection.missing_token.grad.any()


@pytest.mark.parametrize("injection", INJECTION_CHOICES)
def test_every_injection_has_a_training_dropout_with_its_own_default(injection):
    default = small_mae(injection=injection, location_dim=4).injection.location_dropout
    assert default == (0.2 if injection == "clay_v1" else 0.0)
    m = small_mae(injection=injection, location_dim=4, location_dropout=0.3).train()
    n = 4000
    present = m.injection.present_chips(n, None, torch.Generator().manual_seed(0), torch.device("cpu"))
    share = 1 - present.float().mean().item()
    assert abs(share - 0.3) < 4 * math.sqrt(0.3 * 0.7 / n), share
    # combined with the batch's own mask; nothing dropped in evaluation
    known = torch.rand(n, generator=torch.Generator().manual_seed(5)) > 0.5
    both = m.injection.present_chips(n, known, torch.Generator().manual_seed(0), torch.device("cpu"))
    assert torch.equal(both, present & known)
    m.eval()
    assert m.injection.present_chips(n, None, None, torch.device("cpu")) is None
    assert torch.equal(m.injection.present_chips(n, known, None, torch.device("cpu")), known)


@pytest.mark.parametrize(("injection", "missing"), ALL)
def test_full_masking_runs_and_only_decoder_side_injections_see_the_location(injection, missing):
    # At 100 % masking no patch is visible: `add` and `film` act on patch tokens only, so the location
    # cannot reach the prediction; `token` (its token is kept through the decoder) and `clay_v1` (the
    # decoder's positions) can.
    m = model(injection, missing)
    with m.masking(1.0):
        out = run(m, IMG, LOC)
        moved = run(m, IMG, LOC + 1.0)
        absent = run(m, IMG, LOC, KNOWN)
    assert m.mask_ratio == 0.75  # restored
    assert bool(out.mask.all()) and math.isfinite(out.loss.item()) and math.isfinite(absent.loss.item())
    sees = injection in ("token", "clay_v1")
    assert torch.equal(out.pred, moved.pred) is not sees


def test_bad_missing_settings_fail_early_naming_the_choices():
    with pytest.raises(ValueError, match=r"missing='none' is not one of \['zero', 'token', 'skip'\]"):
        small_mae(injection="add", location_dim=4, missing="none")
    m = small_mae(injection="add", location_dim=4)
    with pytest.raises(ValueError, match=r"location_known must be a \(6,\) bool tensor .*got shape \(3,\)"):
        run(m, IMG, LOC, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"mask_ratio=1.5 must lie in \[0, 1\]"), m.masking(1.5):
        pass


# -- the LightningModule: location_known in the batch, NaN coordinates ---------------------------
def lightning(missing_location: str = "error", **backbone) -> MAELightningModule:
    args = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=1, num_heads=2,
                decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, injection="token")  # fmt: skip
    torch.manual_seed(0)
    return MAELightningModule(
        encoding=SinCosEncoding(),
        backbone=functools.partial(MaskedAutoencoderViT, **(args | backbone)),
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        missing_location=missing_location,
    ).eval()


LAT = torch.tensor([10.0, float("nan"), -30.0, 45.0, 0.5, -60.0])
LON = torch.tensor([20.0, 5.0, float("nan"), 100.0, -170.0, 30.0])
NAN_KNOWN = torch.tensor([True, False, False, True, True, True])


def loss(mod, batch):
    return mod(batch, generator=torch.Generator().manual_seed(0)).item()


def test_nan_coordinates_are_an_error_unless_allowed():
    batch = {"image": IMG, "lat": LAT, "lon": LON}
    with pytest.raises(ValueError, match=r"invalid coordinates for chip 1 .*model.missing_location=allow"):
        loss(lightning(), batch)
    allowed = lightning("allow")
    got = loss(allowed, batch)
    # the same as the chips marked missing by the batch itself, at any valid stand-in place
    filled = {"lat": LAT.nan_to_num(7.0), "lon": LON.nan_to_num(-3.0)}
    marked = {"image": IMG, **filled, "location_known": NAN_KNOWN}
    assert math.isfinite(got) and got == loss(allowed, marked) == loss(lightning(), marked)
    assert got != loss(lightning(), {"image": IMG, **filled})
    with pytest.raises(
        ValueError, match=r"model.missing_location='maybe' is not one of \['error', 'allow'\]"
    ):
        lightning("maybe")
