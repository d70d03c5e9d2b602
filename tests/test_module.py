"""The module names validation sets by dataloader index from its own `val_sets` (model.val_sets):
it never asks the datamodule (or the trainer) which sets exist; the data it is given decides."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from clay_exp.encodings.sincos import SinCosEncoding
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.module import MAELightningModule


def module(**kwargs) -> MAELightningModule:
    backbone = functools.partial(
        MaskedAutoencoderViT, img_size=8, in_chans=1, patch_size=4, embed_dim=8, depth=1, num_heads=1,
        decoder_embed_dim=8, decoder_depth=1, decoder_num_heads=1,
    )  # fmt: skip
    torch.manual_seed(0)  # the same weights every time
    return MAELightningModule(SinCosEncoding(), backbone, torch.optim.AdamW, scheduler="constant", **kwargs)


def loader(seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    chips = [
        {"image": torch.randn(1, 8, 8, generator=g), "lat": torch.tensor(10.0 * i), "lon": torch.tensor(5.0)}
        for i in range(4)
    ]
    return DataLoader(chips, batch_size=2)


def validate(m: MAELightningModule, loaders: list[DataLoader]) -> dict[str, float]:
    trainer = L.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )  # fmt: skip
    trainer.validate(m, dataloaders=loaders, verbose=False)  # plain dataloaders, no datamodule
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_each_served_set_is_logged_under_its_name():
    assert set(validate(module(), [loader(0)])) == {"val/loss"}  # split=random: `val` only
    both = validate(module(), [loader(0), loader(1)])
    assert set(both) == {"val/loss", "val_heldout/loss"} and both["val/loss"] != both["val_heldout/loss"]
    named = validate(module(val_sets=["val", "val_a", "val_b"]), [loader(0), loader(1), loader(2)])
    assert set(named) == {"val/loss", "val_a/loss", "val_b/loss"}
    assert named["val_a/loss"] == pytest.approx(both["val_heldout/loss"])  # the same chips, masks


def test_a_set_without_a_name_is_an_error():
    match = r"validation dataloader 2 has no name: model.val_sets=\['val', 'val_heldout'\]"
    with pytest.raises(ValueError, match=match):
        validate(module(), [loader(0), loader(1), loader(2)])


@pytest.mark.parametrize("bad", [[], ["val_heldout", "val"], ["val", "val"]])
def test_val_sets_must_start_with_val(bad):
    with pytest.raises(ValueError, match=r"model\.val_sets="):
        module(val_sets=bad)


def test_a_tuning_trial_selects_on_tune_and_logs_no_reported_set():
    metrics = validate(module(val_sets=["tune", "tune_heldout"]), [loader(0), loader(1)])
    assert set(metrics) == {"tune/loss", "tune_heldout/loss"}
