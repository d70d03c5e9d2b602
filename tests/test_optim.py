"""One optimizer builder for training, the probe and the benchmarks: every user gives a group with
``lr_scale`` the base rate times its scale, and hands the optimizer to the encoding."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import Tensor, nn

from clay_exp.benchmarking import make_optimizer
from clay_exp.encodings.base import SpatialEncoding
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.module import MAELightningModule
from clay_exp.optim import build_optimizer
from clay_exp.probe.fit import FitSettings, fit_probe
from clay_exp.probe.tasks import TASKS, PointSet, TaskData

BASE_LR = 0.02


class TwoRates(SpatialEncoding):
    """Two learned vectors, the second at a quarter of the base rate; remembers its optimizer."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = nn.Parameter(torch.zeros(2))
        self.slow = nn.Parameter(torch.zeros(2))
        self.out_dim = 2
        self.attached: list[torch.optim.Optimizer] = []

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return torch.stack([lat, lon], -1).float() / 90 * self.fast + self.slow

    def param_groups(self) -> list[dict]:
        return [
            {"name": "enc/fast", "params": [self.fast], "weight_decay": 0.0},
            {"name": "enc/slow", "params": [self.slow], "weight_decay": 0.0, "lr_scale": 0.25},
        ]

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.attached.append(optimizer)


def module_with(encoding: SpatialEncoding) -> MAELightningModule:
    backbone = functools.partial(
        MaskedAutoencoderViT, img_size=8, in_chans=1, patch_size=4, embed_dim=8, depth=1, num_heads=1,
        decoder_embed_dim=8, decoder_depth=1, decoder_num_heads=1,
    )  # fmt: skip
    optimizer = functools.partial(torch.optim.AdamW, lr=BASE_LR)
    return MAELightningModule(encoding, backbone, optimizer, scheduler="constant")


def training(encoding: SpatialEncoding) -> torch.optim.Optimizer:
    return module_with(encoding).configure_optimizers()["optimizer"]


def benchmarks(encoding: SpatialEncoding) -> torch.optim.Optimizer:
    return make_optimizer(module_with(encoding))


def probe(encoding: SpatialEncoding) -> torch.optim.Optimizer:
    g = torch.Generator().manual_seed(0)
    points = PointSet(torch.rand(8, generator=g) * 90, torch.rand(8, generator=g) * 180, torch.arange(8) % 2)
    data = TaskData(TASKS["land"], ("sea", "land"), points, {"test": points})
    fit_probe(lambda: encoding, data, seed=0, fit=FitSettings(lr=BASE_LR, steps=1))
    return encoding.attached[-1]


@pytest.mark.parametrize("user", [training, probe, benchmarks])
def test_lr_scale_multiplies_the_base_rate_and_the_encoding_gets_the_optimizer(user):
    encoding = TwoRates()
    optimizer = user(encoding)
    assert encoding.attached == [optimizer]  # attach_optimizer called once, with this optimizer
    lr = {g.get("name"): g["lr"] for g in optimizer.param_groups}
    assert lr["enc/fast"] == pytest.approx(BASE_LR) and lr["enc/slow"] == pytest.approx(BASE_LR / 4)
    group = next(g for g in optimizer.param_groups if g.get("name") == "enc/slow")
    assert "lr_scale" not in group and group["params"] == [encoding.slow]


def test_build_optimizer_keeps_group_settings_and_drops_empty_groups():
    w, b = nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.ones(2))
    groups = [
        {"name": "w", "params": [w]},
        {"name": "b", "params": iter([b]), "weight_decay": 0.0, "lr_scale": 3.0},
        {"name": "empty", "params": []},
    ]
    optimizer = build_optimizer(functools.partial(torch.optim.AdamW, lr=0.1, weight_decay=0.5), groups)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [
        ("w", 0.1, 0.5),
        ("b", pytest.approx(0.3), 0.0),
    ]
