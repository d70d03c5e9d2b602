"""Every encoding has its own rate (`lr_scale`) and declares what a study may tune (`search_space`):
knobs its constructor takes, ranges that hold its current setting; the rate reaches the optimizer
and nothing else changes when it is 1."""

from __future__ import annotations

import inspect

import pytest
import torch

from clay_exp import catalog
from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.optim import build_optimizer
from clay_exp.train import build_module
from tests.helpers import TINY

ENCODINGS = catalog.encoding_names()


@pytest.mark.parametrize("name", ENCODINGS)
def test_each_declared_knob_is_a_constructor_argument_whose_range_holds_the_yaml_value(name):
    cls = catalog.encoding_class(name)
    args = inspect.signature(cls.__init__).parameters
    node = catalog._composed(name, (), catalog.config_dirs()) if not catalog.unavailable_reason(name) else {}
    for knob_name, knob in cls.search_space.items():
        assert isinstance(knob, Knob) and knob_name in args, (name, knob_name)
        value = node.get(knob_name, args[knob_name].default)
        if name != "rff_multiscale" or knob_name != "sigma":  # multiscale reads sigmas, not sigma
            assert knob.contains(value), (name, knob_name, value, knob.describe())


def test_an_encoding_with_parameters_takes_lr_scale_and_one_without_declares_nothing_to_tune():
    for name in ENCODINGS:
        cls = catalog.encoding_class(name)
        takes = "lr_scale" in inspect.signature(cls.__init__).parameters
        if "lr_scale" in cls.search_space:
            assert takes, name
    assert catalog.encoding_class("sincos").search_space == {}
    assert catalog.encoding_class("none").search_space == {}
    assert catalog.encoding_class("oracle").search_space == {}


class Tiny(SpatialEncoding):
    def __init__(self, lr_scale: float = 1.0) -> None:
        super().__init__(lr_scale)
        self.proj = torch.nn.Linear(2, 3)
        self.out_dim = 3


def test_lr_scale_multiplies_the_encodings_rate_and_is_checked():
    groups = Tiny(lr_scale=8.0).param_groups()
    assert [g["lr_scale"] for g in groups] == [8.0]
    opt = build_optimizer(lambda params: torch.optim.AdamW(params, lr=1e-3), groups)
    assert opt.param_groups[0]["lr"] == pytest.approx(8e-3)
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"lr_scale=.* must be > 0"):
            Tiny(lr_scale=bad)


@pytest.mark.parametrize("name", ["spherical_harmonics", "xyz", "hierarchical_plain"])
def test_the_encodings_group_follows_lr_scale_and_the_projection_the_backbone(make_cfg, name):
    base = build_module(make_cfg([*TINY, f"encoding={name}"]))
    scaled = build_module(make_cfg([*TINY, f"encoding={name}", "++encoding.lr_scale=4"]))
    lrs = {}
    for module in (base, scaled):
        opt = build_optimizer(module.optimizer_factory, module.param_groups(), module.encoding)
        by_param = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
        enc = {by_param[id(p)] for p in module.encoding.parameters() if p.requires_grad}
        projection = {by_param[id(p)] for p in module.model.location_parameters()}
        lrs[module is scaled] = (enc, projection)
    lr = base.optimizer_factory.keywords["lr"]
    assert lrs[False] == ({lr}, {lr})  # lr_scale 1: as before, one rate
    assert lrs[True] == ({4 * lr}, {lr})  # the encoding x4; its projection, a dense layer, not


def test_knobs_say_what_is_wrong():
    assert Knob(1e-4, 1e-2).contains(1e-3) and not Knob(1e-4, 1e-2).contains(0.1)
    assert Knob(5, 30, "linear", integer=True).contains(10) and not Knob(
        5, 30, "linear", integer=True
    ).contains(10.5)
    assert Knob(1.0, 100.0).position(10.0) == pytest.approx(0.5)
    assert Knob.choice(8, 16).contains(16) and Knob.choice(8, 16).describe() == "one of [8, 16]"
    with pytest.raises(ValueError, match="log knob needs low > 0"):
        Knob(0.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        Knob(2.0, 1.0)
    with pytest.raises(ValueError, match="is not one of"):
        Knob(1.0, 2.0, "exp")
    with pytest.raises(ValueError, match="whole-number bounds"):
        Knob(1.5, 4, "linear", integer=True)
