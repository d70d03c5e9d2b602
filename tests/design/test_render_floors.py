"""Monte-Carlo bounds on the earth world's location floor, against what they must equal."""

from __future__ import annotations

import pytest

from clay_exp.config import compose_config
from clay_exp.design.from_config import floors_from_config, world_from_config
from clay_exp.design.render_floors import rendered_location_floors

SMALL = [
    "data=earth",
    "data.chip_size=8",
    "data.bands=2",
    "model.backbone.patch_size=4",
    "model.backbone.mask_ratio=0.75",
]


@pytest.fixture(scope="module")
def earth():
    return world_from_config(compose_config(SMALL), length=96)


def test_phase_known_leaves_exactly_the_pixel_noise(earth):
    """Knowing place and phase, only the i.i.d. noise is left: raw MSE = noise_std², and with the
    K/(K+1) correction the estimate is unbiased for it."""
    unknown, known = rendered_location_floors(earth, 4, 0.75, chips=96, replicas=8)
    assert known.raw_mc == pytest.approx(earth.noise_std**2, abs=5 * known.raw_mc_se)
    assert known.raw_mc_se < 0.1 * earth.noise_std**2
    # texture phases unknown: strictly worse, in raw and norm-pix units
    assert unknown.raw_mc > known.raw_mc + 5 * unknown.raw_mc_se
    assert unknown.loss_mc > known.loss_mc + 3 * (unknown.loss_mc_se + known.loss_mc_se)


def test_a_noiseless_world_is_predicted_exactly_when_the_phase_is_known(earth):
    kept = earth.noise_std
    earth.noise_std = 0.0
    try:
        unknown, known = rendered_location_floors(earth, 4, 0.75, chips=32, replicas=2)
    finally:
        earth.noise_std = kept
    assert known.raw_mc == 0.0 and unknown.raw_mc > 0
    assert earth.noise_std == kept  # the renders put the world back as they found it


def test_bad_arguments_are_refused(earth):
    with pytest.raises(ValueError, match="replicas=1 must be >= 2"):
        rendered_location_floors(earth, 4, 0.75, chips=8, replicas=1)
    with pytest.raises(ValueError, match="does not render chips"):
        rendered_location_floors(object(), 4, 0.75)


def test_earth_floors_from_config_bracket_the_location_floor():
    report = floors_from_config(compose_config(SMALL), fit_chips=256, eval_chips=128)
    by_name = {f.name: f for f in report.floors}
    assert {"none", "location", "location, phase unknown", "location, phase known"} <= set(by_name)
    assert by_name["location, phase known"].loss_mc < by_name["location, phase unknown"].loss_mc
