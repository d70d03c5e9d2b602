"""The speed settings (issue 22): the default path does less repeated work and computes the same
numbers as ``speed=eager`` (the plain path): the same batches, the same optimizer steps, the same
run."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from hydra.utils import instantiate

from clay_exp.benchmarking import make_optimizer
from clay_exp.data.datamodule import RenderedChips
from clay_exp.speed import Speed, apply_to_datamodule
from clay_exp.train import build_module, train
from tests.helpers import TINY

#: Sites, region split, three sets; the arm's own rates (~tuned), as the comments below assume.
STUDY = ["experiment=study_known_answer", "arm=hierarchical", "~tuned"]
#: Batches of 64 (a multiple of every SIMD width): the world's vectorised maths then gives a chip
#: the same bits in any batch, so the rendered and the per-batch path agree exactly.
SMALL = ["data.batch_size=64", "data.train_size=256", "data.val_size=192"]


def datamodule(make_cfg, overrides: list[str], render_once_mb: float):
    dm = instantiate(make_cfg(overrides).data)
    dm.render_once(render_once_mb)
    dm.setup("fit")
    return dm


def batches(loader, epoch: int | None = None) -> list[dict]:
    if epoch is not None:
        loader.sampler.set_epoch(epoch)
    return list(loader)


def assert_same_batches(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b) and a
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key].dtype == y[key].dtype and torch.equal(x[key], y[key]), key


@pytest.mark.parametrize(
    "world",
    [STUDY, ["data=synthetic", "data.split=region"], ["data=earth", "data.chip_size=16"]],
    ids=["study_known_answer", "synthetic", "earth"],
)
def test_rendered_chips_give_the_batches_the_world_renders(make_cfg, world):
    rendered = datamodule(make_cfg, [*world, *SMALL], render_once_mb=64)
    plain = datamodule(make_cfg, [*world, *SMALL], render_once_mb=0)
    assert set(rendered.rendered) == {"train", *rendered.val_set_names} and not plain.rendered
    for epoch in (0, 3):  # a new order every epoch, the same chips
        assert_same_batches(
            batches(rendered.train_dataloader(), epoch), batches(plain.train_dataloader(), epoch)
        )
    val = [dm.val_dataloader() for dm in (rendered, plain)]
    for a, b in zip(*(v if isinstance(v, list) else [v] for v in val), strict=True):
        assert_same_batches(batches(a), batches(b))


def test_a_set_too_large_to_keep_is_rendered_per_batch(make_cfg):
    dm = datamodule(make_cfg, [*STUDY, *SMALL], render_once_mb=0.45)  # 2.1 kB a chip: 256 take 0.53 MiB
    assert set(dm.rendered) == {"val", "val_heldout"}  # 192 chips each fit, the training set not
    assert len(batches(dm.train_dataloader(), 0)) == 4
    with pytest.raises(ValueError, match=r"speed.render_once_mb=-1"):
        dm.render_once(-1)


def test_rendered_chips_index_like_the_world():
    chips = RenderedChips({"image": torch.arange(12.0).view(6, 2), "lat": torch.arange(6.0)})
    assert len(chips) == 6 and torch.equal(chips[4]["image"], torch.tensor([8.0, 9.0]))
    assert torch.equal(chips.__getitems__([5, 0])["lat"], torch.tensor([5.0, 0.0]))
    with pytest.raises(ValueError, match="share their first dimension"):
        RenderedChips({"image": torch.zeros(3, 2), "lat": torch.zeros(4)})


def test_speed_settings_are_read_and_checked():
    assert Speed.from_config(None) == Speed() == Speed(name="eager")  # runs recorded before `speed`
    assert Speed.from_config({"name": "x", "render_once_mb": 8}).render_once_mb == 8
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['render_once'\]; the settings are"):
        Speed.from_config({"render_once": 8})
    with pytest.raises(ValueError, match=r"speed.render_once_mb=-2"):
        Speed.from_config({"render_once_mb": -2})
    apply_to_datamodule(Speed(render_once_mb=8), object())  # a datamodule without worlds: left alone


def test_fused_optimizer_takes_the_same_steps_up_to_rounding(make_cfg):
    cfg = make_cfg([*STUDY, *TINY, "speed=default"])  # the study itself runs on speed=fast
    dm = instantiate(cfg.data)
    dm.setup("fit")
    data = batches(dm.train_dataloader(), 0)
    torch.manual_seed(0)
    plain = build_module(cfg)
    fast = copy.deepcopy(plain)
    fast.hparams.fused_optimizer = True
    groups = {g["name"]: g for g in fast.param_groups()}
    assert groups["backbone"]["fused"] and groups["backbone_no_decay"]["fused"]
    assert all("fused" not in g for g in plain.param_groups() if g["name"].startswith("backbone"))
    for module in (plain, fast):
        optimizer = make_optimizer(module)
        for step, batch in enumerate(data):
            torch.manual_seed(step)  # the same masks for both
            module(batch).backward()
            optimizer.step()
            optimizer.zero_grad()
    # apart only by rounding (carried through 4 steps): well below one step's size (Adam: ~lr = 1.5e-3)
    diffs = [float((a - b).abs().max()) for a, b in zip(plain.parameters(), fast.parameters(), strict=True)]
    assert 0 < max(diffs) < 3e-4


def test_a_short_study_run_gives_the_same_numbers_on_every_path(make_cfg, tmp_path):
    overrides = [*STUDY, *TINY, "data.batch_size=32", "data.train_size=128", "trainer.max_steps=8"]
    paths = ("eager", "default", "fast")
    runs = {s: train(make_cfg([*overrides, f"speed={s}"], tmp_path / s)) for s in paths}
    for speed, run in runs.items():
        assert run.status == "completed" and run.config["speed"]["name"] == speed
    for key in ("val/loss", "val_heldout/loss"):
        eager = runs["eager"].final[key]
        assert runs["default"].final[key] == pytest.approx(eager, rel=1e-6, abs=0)  # bitwise here
        assert runs["fast"].final[key] == pytest.approx(eager, rel=1e-4, abs=0)  # rounding, 8 steps on


def test_compile_keeps_its_caches_beside_the_logs(make_cfg, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "unset below; restored after the test")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR")
    assert make_cfg().paths.compile_cache == "./compile_cache"  # beside ./logs
    build_module(make_cfg(["compile=true", f"paths.compile_cache={tmp_path / 'cache'}"]))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "cache").resolve())
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))  # a user's own choice wins
    build_module(make_cfg(["compile=true", f"paths.compile_cache={tmp_path / 'cache'}"]))
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
