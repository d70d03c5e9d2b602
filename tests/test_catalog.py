"""`python -m clay_exp.catalog`: every encoding config, its output dim and parameter count; and the one
answer to "can this encoding run here?", derived from the class's declarations."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clay_exp import catalog
from clay_exp.catalog import class_unavailable_reason, main, unavailable_reason
from clay_exp.config import CONFIG_DIR
from clay_exp.encodings.base import SpatialEncoding
from clay_exp.encodings.oracle import OracleEncoding

ROOT = Path(__file__).resolve().parents[1]


def table_rows(text: str) -> dict[str, list[str]]:
    return {
        line.split()[0]: line.split() for line in text.splitlines()[2:] if line and not line.startswith(" ")
    }


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def test_lists_every_encoding_with_dim_and_parameters(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out.split("\n\n")[0])
    # every encoding YAML, each once (not the shared bases in configs/encoding/base/)
    assert set(rows) == {p.stem for p in (CONFIG_DIR / "encoding").glob("*.yaml")}
    # by hand: wrap = Linear(4, 64) + Linear(64, 64) = 320 + 4160
    assert rows["wrap"][1:4] == ["64", "4,480", "4,480"]
    assert rows["none"][1:4] == ["0", "0", "0"]
    assert rows["sincos"][1] == "4"
    # tile_lookup: 360 x 180 cells of 16
    assert rows["tile_lookup"][1:3] == ["16", "1,036,800"]
    if not importable("geoclip"):  # the optional extra: listed, with how to install it
        assert rows["geoclip_pretrained"][1] == "-"
        assert re.search(r"geoclip_pretrained: skipped: .*pip install '\.\[geoclip\]'", out)
    else:
        # by hand: 3 branches of (RFF matrix 256x2, Linear(512, 1024), 2 x Linear(1024, 1024),
        # Linear(1024, 512)) = 3 x 3,149,824; frozen, so none trainable
        assert rows["geoclip_pretrained"][1:4] == ["512", "9,449,472", "0"]


def test_unknown_name_is_an_error_listing_choices(capsys):
    with pytest.raises(SystemExit):
        main(["bogus"])
    assert "unknown encoding(s) ['bogus']" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_as_a_module():
    proc = subprocess.run(
        [sys.executable, "-m", "clay_exp.catalog", "sincos", "wrap"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert set(table_rows(proc.stdout.split("\n\n")[0])) == {"sincos", "wrap"}


class NeedsAPackage(SpatialEncoding):
    requires_package = "clay_exp_no_such_package"


class NeedsElevation(SpatialEncoding):
    inputs = ("lat", "lon", "elevation")
    required_overrides = ("data=some_world",)


def test_unavailable_reason_reads_the_declarations():
    assert class_unavailable_reason(SpatialEncoding) is None
    assert class_unavailable_reason(NeedsAPackage) == (
        "needs the optional package `clay_exp_no_such_package`, not installed: "
        "pip install '.[clay_exp_no_such_package]'"
    )
    assert class_unavailable_reason(NeedsAPackage, batch_keys=None) is not None  # missing either way
    assert class_unavailable_reason(NeedsElevation) == (
        "needs batch keys ['elevation'] besides ['lat', 'lon'] (only with data=some_world)"
    )
    assert class_unavailable_reason(NeedsElevation, ("lat", "lon", "elevation")) is None
    assert class_unavailable_reason(NeedsElevation, batch_keys=None) is None  # its world provides it


def test_the_oracle_and_geoclip_by_name():
    assert catalog.encoding_class("oracle") is OracleEncoding
    assert catalog.required_overrides("oracle") == ("data=hierarchical_world",)
    assert unavailable_reason("oracle").startswith("needs batch keys ['latents'")
    assert unavailable_reason("oracle", batch_keys=None) is None
    # built through the overrides its class requires: the world's levels reach it
    assert catalog.build_encoding("oracle").out_dim == 32
    assert (unavailable_reason("geoclip_pretrained") is None) == importable("geoclip")
    for name in ("sincos", "hierarchical", "none"):
        assert unavailable_reason(name) is None and catalog.required_overrides(name) == ()
