"""A study's tuning declaration: checked before any trial, and each arm's space built from it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from clay_exp.config import compose_config
from clay_exp.encodings.base import Knob, SpatialEncoding
from clay_exp.encodings.hierarchical import HierarchicalTileEncoding
from clay_exp.encodings.none import NoEncoding
from clay_exp.encodings.spherical_harmonics import SphericalHarmonicsEncoding
from clay_exp.tuning.declaration import TuningDeclaration, arm_space, current_values, edge_knobs
from clay_exp.tuning.record import UNTUNED, tuning_record

DECLARED = {
    "objective": {"tune/loss": 0.5, "tune_heldout/loss": 0.5},
    "trials": 6,
    "seeds": [100],
    "backbone": {"model.optimizer.lr": {"low": 1e-4, "high": 1e-2, "scale": "log"}},
    "fixed": ["encoding.w0_initial"],
    "arms": {
        "tables": {
            "space": {
                "encoding.lr_scale": {"low": 8, "high": 64},
                "encoding.dim_per_level": {"choices": [8, 16]},
            }
        },
        "frozen": {"fixed": ["model.optimizer.lr"]},
    },
}


def declared(**changes) -> TuningDeclaration:
    return TuningDeclaration.from_config(OmegaConf.create({**DECLARED, **changes}))


def test_an_arms_space_is_the_backbone_its_class_and_the_studys_changes():
    cfg = compose_config(["encoding=spherical_harmonics"])
    sh = arm_space(declared(), "spherical_harmonics", SphericalHarmonicsEncoding, cfg)
    assert list(sh) == [
        "model.optimizer.lr",
        "encoding.lr_scale",
        "encoding.degrees",
    ]  # w0 fixed by the study
    tables = arm_space(
        declared(), "tables", HierarchicalTileEncoding, compose_config(["encoding=hierarchical"])
    )
    assert tables["encoding.lr_scale"] == Knob(8, 64) and tables["encoding.dim_per_level"] == Knob.choice(
        8, 16
    )
    assert arm_space(declared(), "frozen", NoEncoding, cfg) == {}
    assert current_values(cfg, sh, SphericalHarmonicsEncoding) == {
        "model.optimizer.lr": 1.5e-3,
        "encoding.lr_scale": 1.0,  # not in the YAML: the constructor's default
        "encoding.degrees": 10,
    }


class Legacy(SpatialEncoding):
    """An encoding written before encodings had a rate of their own (no lr_scale argument)."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()


def test_an_encoding_without_lr_scale_tunes_the_backbone_only_and_the_plan_says_so():
    notes: list[str] = []
    assert list(arm_space(declared(), "legacy", Legacy, compose_config([]), notes)) == ["model.optimizer.lr"]
    assert notes == ["Legacy takes no lr_scale: its own rate is not tuned"]


def test_a_knob_nothing_can_set_is_named():
    bad = declared(arms={"sh": {"space": {"encoding.wavelength": {"low": 1, "high": 2}}}})
    with pytest.raises(
        ValueError, match=r"tunes 'encoding.wavelength', which SphericalHarmonicsEncoding does not take"
    ):
        arm_space(bad, "sh", SphericalHarmonicsEncoding, compose_config([]))
    bad = declared(backbone={"model.optimizer.momentum": {"low": 0.5, "high": 0.99, "scale": "linear"}})
    with pytest.raises(
        ValueError, match=r"'model\.optimizer\.momentum', which is not a key of the composed config"
    ):
        arm_space(bad, "none", NoEncoding, compose_config([]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"objective": {"val/loss": 1.0}},
            r"names 'val/loss'; a tuning objective weighs only the tuning sets",
        ),
        ({"objective": {"tune/loss": 0}}, r"objective\['tune/loss'\]=0 must be a weight > 0"),
        ({"trials": 0}, r"trials=0 and batch=2 must be >= 1"),
        ({"steps_fraction": 1.5}, r"steps_fraction=1.5 must be in \(0, 1\]"),
        ({"seeds": [1, 1]}, r"seeds=\[1, 1\] must be distinct"),
        ({"budget": 3}, r"unknown keys \['budget'\]"),
        (
            {"backbone": {"model.optimizer.lr": {"low": 1e-2, "high": 1e-4}}},
            r"knob 'model.optimizer.lr'.*low < high",
        ),
        ({"arms": {"x": {"range": {}}}}, r"arms.x may hold `space` and `fixed`"),
    ],
)
def test_a_bad_declaration_is_refused_with_the_reason(changes, message):
    with pytest.raises(ValueError, match=message):
        declared(**changes)


def test_objective_and_edges():
    d = declared()
    assert d.objective_value({"tune/loss": 0.4, "tune_heldout/loss": 0.8}) == pytest.approx(0.6)
    assert (
        d.objective_value({"tune/loss": 0.4}) is None
        and d.objective_text() == "0.5·tune/loss + 0.5·tune_heldout/loss"
    )
    space = {"lr": Knob(1e-4, 1e-2), "scale": Knob(1.0, 1024.0), "dim": Knob.choice(8, 16)}
    # log scale: 1.2e-4 sits 4 % of the way up its range, 30 at 49 %, 1000 at 99.7 %
    assert edge_knobs(space, {"lr": 1.2e-4, "scale": 30.0, "dim": 16}, 0.1) == ["lr"]
    assert edge_knobs(space, {"lr": 1e-3, "scale": 1000.0}, 0.1) == ["scale"]


def test_a_run_records_its_values_and_where_they_came_from(tmp_path):
    base = ["experiment=study_known_answer", "arm=xyz", "~tuned"]
    record = tuning_record(compose_config(base, tmp_path))
    assert record == {"source": UNTUNED, "values": {"model.optimizer.lr": 1.5e-3, "encoding.lr_scale": 1.0}}
    tuned = [
        *base,
        "++model.optimizer.lr=0.003",
        "+tuning_source.file=configs/tuned/study_known_answer/xyz.yaml",
        "+tuning_source.run=logs/study_known_answer/tuning/tune",
        "+tuning_source.trial=7",
        "+tuning_source.chosen={model.optimizer.lr:0.002,encoding.lr_scale:1.0}",
    ]
    record = tuning_record(compose_config(tuned, tmp_path))
    assert record["source"] == "configs/tuned/study_known_answer/xyz.yaml" and record["trial"] == 7
    assert record["values"]["model.optimizer.lr"] == 0.003 and record["overridden"] == ["model.optimizer.lr"]
    assert (
        tuning_record(compose_config(["arm=xyz", "+study.fine_zoom=6"], tmp_path)) is None
    )  # no study.tuning
