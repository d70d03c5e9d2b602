"""`oracle`: the interface checks that test_interface skips (it needs the world's latents), and the floor.

The oracle's config reads the world's levels, so it is built through the composed config with
``data=hierarchical_world``, as ``python train.py data=hierarchical_world encoding=oracle`` builds it.
"""

from __future__ import annotations

import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from clay_exp.config import compose_config
from clay_exp.data.worlds.hierarchical import FACTORS_PER_LEVEL, HierarchicalWorld

WORLD = "data=hierarchical_world"


@pytest.fixture
def world_batch() -> dict[str, torch.Tensor]:
    return HierarchicalWorld(length=16, chip_size=16)[list(range(16))]


def test_oracle_returns_the_true_latents(world_batch):
    enc = instantiate(
        compose_config(
            ["encoding=oracle", WORLD, "data.world.levels=[0,3,6]", "data.world.level_shares=[0.3,0.3,0.3]"]
        ).encoding
    )
    assert enc.out_dim == 3 * FACTORS_PER_LEVEL and enc.levels == [0, 3, 6]
    world = HierarchicalWorld(length=16, chip_size=16, levels=[0, 3, 6], level_shares=[0.3, 0.3, 0.3])
    batch = world[list(range(16))]
    out = enc(batch)
    assert out.shape == (16, enc.out_dim) and out.dtype == torch.float32
    assert torch.equal(out, batch["latents"])
    assert not list(enc.parameters())  # the model's projection is the only learned part


def test_oracle_checks_its_inputs(world_batch):
    enc = instantiate(compose_config(["encoding=oracle", WORLD]).encoding)
    with pytest.raises(KeyError, match="latents"):
        enc({"lat": world_batch["lat"], "lon": world_batch["lon"]})
    bad = dict(world_batch, lat=world_batch["lat"].clone())
    bad["lat"][3] = 95.0
    with pytest.raises(ValueError, match=r"chip 3 .*lat=95.0"):
        enc(bad)
    with pytest.raises(ValueError, match="latents must have shape"):
        enc(dict(world_batch, latents=world_batch["latents"][:, :5]))


@pytest.mark.parametrize(("levels", "shares"), [("[0,3,6,10]", "[0.2,0.2,0.2,0.3]"), ("[2,9]", "[0.5,0.4]")])
def test_oracle_width_from_its_config_is_the_worlds_latent_width(levels, shares):
    """The oracle's YAML gives it levels x factors per level by interpolation (the encodings import
    no data code): the width must be what the world's batches carry."""
    cfg = compose_config(
        ["encoding=oracle", WORLD, f"data.world.levels={levels}", f"data.world.level_shares={shares}"]
    )
    enc = instantiate(cfg.encoding)
    world = instantiate(cfg.data.world)(length=4, chip_size=16)  # a partial: the datamodule adds the rest
    assert enc.out_dim == world.latent_dim == FACTORS_PER_LEVEL * len(world.levels)
    assert enc(world[[0, 1, 2, 3]]).shape == (4, world.latent_dim)


@pytest.mark.parametrize("data", ["synthetic", "earth"])
def test_oracle_with_another_world_fails_at_once(data):
    cfg = compose_config(["encoding=oracle", f"data={data}"])
    with pytest.raises(InstantiationException, match="only valid with data=hierarchical_world"):
        instantiate(cfg.encoding)


@pytest.fixture
def one_thread():
    """A tiny model's ops gain nothing from threads, and lose much on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_oracle_beats_none_after_a_short_seeded_run(one_thread):
    """200 steps on a seeded world whose continents (z3) carry most of the variance: the true
    latents must give a clearly lower validation loss than no location at all."""
    losses = {}
    for encoding in ("none", "oracle"):
        cfg = compose_config(
            [
                f"encoding={encoding}",
                WORLD,
                "data.world.levels=[0,3]",
                "data.world.level_shares=[0.2,0.7]",
                "data.chip_size=16",
                "data.batch_size=32",
                "data.train_size=6400",
                "data.val_size=256",
                "model.backbone.embed_dim=32",
                "model.backbone.depth=1",
                "model.backbone.decoder_embed_dim=32",
                "model.backbone.decoder_depth=1",
                "model.optimizer.lr=3e-3",
                "model.scheduler=constant",
            ]
        )
        torch.manual_seed(0)
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        module = instantiate(cfg.model, encoding=instantiate(cfg.encoding))
        optimizer = module.configure_optimizers()["optimizer"]
        for batch in datamodule.train_dataloader():  # 200 steps
            optimizer.zero_grad()
            module(batch).backward()
            optimizer.step()
        val = datamodule.datasets["val"][list(range(256))]
        with torch.no_grad():
            losses[encoding] = float(module(val, generator=torch.Generator().manual_seed(0)))
    assert losses["oracle"] < losses["none"] - 0.05, losses


def three_level_oracle(*overrides: str):
    cfg = compose_config(
        [
            "encoding=oracle",
            WORLD,
            "data.world.levels=[0,3,6]",
            "data.world.level_shares=[0.3,0.3,0.3]",
            *overrides,
        ]
    )
    world = HierarchicalWorld(length=256, chip_size=16, levels=[0, 3, 6], level_shares=[0.3, 0.3, 0.3])
    return instantiate(cfg.encoding), world[list(range(256))]


def test_oracle_coarse_knows_every_level_but_the_finest():
    enc, batch = three_level_oracle("++encoding.known=coarse")
    out = enc(batch).view(256, 3, FACTORS_PER_LEVEL)
    truth = batch["latents"].view(256, 3, FACTORS_PER_LEVEL)
    assert torch.equal(out[:, :2], truth[:, :2]) and not out[:, 2].any()
    enc.train()
    assert not enc(batch).view(256, 3, -1)[:, 2].any()  # never, in training either


def test_level_dropout_zeroes_a_share_of_training_chips_at_that_level_only():
    enc, batch = three_level_oracle("++encoding.level_dropout=[0.0,0.0,0.5]")
    truth = batch["latents"].view(256, 3, FACTORS_PER_LEVEL)
    enc.train()
    torch.manual_seed(0)
    out = enc(batch).view(256, 3, FACTORS_PER_LEVEL)
    dropped = ~out[:, 2].any(dim=1)
    assert torch.equal(out[:, :2], truth[:, :2])
    assert 0.35 < float(dropped.double().mean()) < 0.65  # 128 expected, sd 8
    assert torch.equal(out[~dropped, 2], truth[~dropped, 2])
    enc.eval()
    assert torch.equal(enc(batch), batch["latents"])  # evaluation never drops
    with pytest.raises(InstantiationException, match=r"level_dropout=\[0.5, 0.5\] must be a probability"):
        three_level_oracle("++encoding.level_dropout=[0.5,0.5]")


def test_the_oracle_seen_arm_is_trained_with_its_fine_level_dropped(tmp_path):
    cfg = compose_config(["experiment=study_known_answer", "arm=oracle_seen", "~tuned"], tmp_path)
    assert instantiate(cfg.encoding).level_dropout == [0.0, 0.0, 0.2]
    assert instantiate(compose_config(["encoding=oracle_seen", WORLD]).encoding).level_dropout == [0.0] * 4
