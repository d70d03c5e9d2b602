"""scripts/compare.py: the report's command line, on run folders written here."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from clay_exp.results import RunRecord
from tests.helpers import load_script
from tests.report.factory import LOSSES, study_node, write_run, write_truncated


@pytest.fixture(scope="module")
def cli():
    return load_script("compare")


def test_a_truncated_results_json_is_listed_and_the_report_still_written(tmp_path, cli, capsys):
    """Two good runs and one broken file: exit 0, the table of the good runs, the file named."""
    write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    write_run(tmp_path, "1-sincos-s0", "sincos", 0, 0.4)
    broken, parse_error = write_truncated(tmp_path / "2-sincos-s1")
    assert cli.main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    md = (tmp_path / "comparison.md").read_text()
    assert md.strip() == out.strip()
    assert "| 1 | `sincos` | 1 | 0.4000 (1 run, no CI) |" in md
    assert "| 2 | `none` | 1 | 0.5000 (1 run, no CI) |" in md
    listed = md.split("## Runs that could not be read (in no table)")[1]
    assert f"| `2-sincos-s1` | `?` | — | unreadable | {broken}: JSONDecodeError: {parse_error} |" in listed
    assert f"warning: left out of the report, unreadable: {broken}: JSONDecodeError" in err
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert sorted(runs["status"]) == ["completed", "completed", "unreadable"]
    for name in ("comparison.csv", "final_loss.png", "loss_curves.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_baseline_and_yardstick_flags(tmp_path, cli, capsys):
    for e, losses in LOSSES.items():
        for s, v in enumerate(losses):
            write_run(tmp_path, f"{e}-s{s}", e, s, v)
    out = tmp_path / "report"
    assert cli.main([str(tmp_path), "--out", str(out), "--baseline", "sincos"]) == 0
    table = pd.read_csv(out / "comparison.csv").set_index("encoding")
    base, best = np.mean(LOSSES["sincos"]), np.mean(LOSSES["oracle"])
    expected = (base - np.mean(LOSSES["none"])) / (base - best)
    assert table.loc["none", "val/loss gap_closed"] == pytest.approx(expected)
    assert "(L_sincos − L_encoding) / (L_sincos − L_oracle)" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(tmp_path), "--out", str(out), "--yardstick", "orcale"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "--yardstick='orcale' ran in none of these sweeps; encodings: ['none', 'oracle', 'sincos']" in err


def write_study_sweep(sweep, config: dict) -> None:
    """3 arms x 2 seeds of a study whose runs carry `config` (a resolved train config)."""
    config = {**config, "study": study_node([("hier", "none", "a<b")], yardsticks=["oracle"])}
    for e, losses in {"none": [0.40, 0.42], "hier": [0.30, 0.33], "oracle": [0.22, 0.23]}.items():
        for s, v in enumerate(losses):
            RunRecord(
                status="completed",
                experiment="study",
                encoding=e,
                data=config["data_name"],
                seed=s,
                config={**config, "seed": s},
                final={"val/loss": v},
                steps=50,
            ).save(sweep / f"{e}-s{s}")


def resolved(make_cfg, *overrides: str) -> dict:
    return OmegaConf.to_container(make_cfg(list(overrides)), resolve=True)


def test_floors_beside_a_hierarchical_study_cached_and_switched_off(tmp_path, cli, capsys, make_cfg):
    write_study_sweep(tmp_path / "sweep", resolved(make_cfg, "data=hierarchical_world"))
    out = tmp_path / "report"
    assert cli.main([str(tmp_path / "sweep"), "--out", str(out), "--floor-chips", "16"]) == 0
    md = (out / "comparison.md").read_text()
    assert md.index("### Declared comparisons") < md.index("### Information floors")
    assert md.index("### Information floors") < md.index("## Exploratory (not pre-registered)")
    assert "Computed on 16 chips" in md and "| location | z0,z3,z6,z10 |" in md
    (cache,) = out.glob("floors-*.json")
    floors = {f["name"]: f["loss_mc"] for f in json.loads(cache.read_text())["floors"]}
    # Distance of the budget: learned mean − floor, for the none arm against the none floor.
    assert f"| `none` | val/loss | 0.4100 | {0.41 - floors['none']:.4f} |" in md
    assert (out / "declared.png").stat().st_size > 0
    capsys.readouterr()
    assert cli.main([str(tmp_path / "sweep"), "--out", str(out), "--floor-chips", "16"]) == 0
    assert f"Read from `{cache.name}` (cached)" in capsys.readouterr().out
    off = tmp_path / "off"
    assert cli.main([str(tmp_path / "sweep"), "--out", str(off), "--no-floors"]) == 0
    md = (off / "comparison.md").read_text()
    assert "## Study: toy" in md and "Information floors" not in md and not list(off.glob("floors-*"))


def test_a_world_without_cheap_floors_says_how_to_get_them(tmp_path, cli, make_cfg):
    write_study_sweep(tmp_path, resolved(make_cfg, "data=synthetic"))
    assert cli.main([str(tmp_path), "--floors"]) == 0
    md = (tmp_path / "comparison.md").read_text()
    assert "Not computed for SyntheticWorld" in md and "--floors-json" in md
    assert not list(tmp_path.glob("floors-*"))


def test_floors_json_from_scripts_floors_and_a_world_that_fails(tmp_path, cli, make_cfg):
    """--floors-json takes scripts/floors.py's file (any world); a world the floors code cannot build
    leaves a note, never a failed report."""
    floor = {"known_levels": None, "chips": 512, "raw_closed": None, "raw_mc": 0.9, "raw_mc_se": 0.01}
    report = {
        "world": "SyntheticWorld",
        "patch_size": 4,
        "mask_ratio": 0.75,
        "norm_pix_loss": True,
        "chip_shape": [3, 32, 32],
        "floors": [
            {**floor, "name": n, "estimator": "linear", "loss_mc": v, "loss_mc_se": 0.002, "extra": {}}
            for n, v in (("none", 0.3125), ("location", 0.25))
        ],
    }
    (tmp_path / "f.json").write_text(json.dumps({"overrides": [], "floors": report}))
    write_study_sweep(tmp_path / "syn", resolved(make_cfg, "data=synthetic"))
    assert cli.main([str(tmp_path / "syn"), "--floors-json", str(tmp_path / "f.json")]) == 0
    md = (tmp_path / "syn" / "comparison.md").read_text()
    assert "| location | — | 0.2500 ± 0.0020 | — |" in md
    assert f"| `none` | val/loss | 0.4100 | {0.41 - 0.3125:.4f} | {0.41 - 0.25:.4f} |" in md
    config = resolved(make_cfg, "data=hierarchical_world")
    config["data"]["world"]["no_such_option"] = 1
    write_study_sweep(tmp_path / "bad", config)
    assert cli.main([str(tmp_path / "bad")]) == 0
    md = (tmp_path / "bad" / "comparison.md").read_text()
    assert "Not computed: computing them failed (TypeError: " in md and "## Exploratory" in md


@pytest.mark.parametrize(
    "content",
    [
        b"",  # empty
        b"\x80\x81\xfe\xff" * 64 + b"\n\x00\x00",  # binary bytes
        b"step,val/loss\n0,0.5\noops,not a number\n3,0.4\n",  # non-numeric rows
        b'step,val/loss\n0,0.5\n1,"unclosed\n',  # torn
    ],
    ids=["empty", "binary", "non-numeric rows", "torn"],
)
def test_a_bad_metrics_csv_is_named_and_the_report_still_written(tmp_path, content, cli, caplog):
    """One damaged loss curve is left out with a warning naming its file; the report and both plots
    are written and the command exits 0 (in process: the next test runs the script as a user does)."""
    bad = _runs_with_one_bad_curve(tmp_path, content)
    assert cli.main([str(tmp_path)]) == 0
    assert any(str(bad) in r.getMessage() and r.levelname == "WARNING" for r in caplog.records), caplog.text
    for name in ("comparison.md", "loss_curves.png", "final_loss.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_a_bad_metrics_csv_as_a_user_runs_the_script(tmp_path):
    """scripts/compare.py in its own process: the warning reaches stderr as ``warning: <file>: ...``."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    bad = _runs_with_one_bad_curve(tmp_path, b'step,val/loss\n0,0.5\n1,"unclosed\n')
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compare.py"), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert f"warning: {bad}: " in proc.stderr
    for name in ("comparison.md", "loss_curves.png", "final_loss.png"):
        assert (tmp_path / name).stat().st_size > 0


def _runs_with_one_bad_curve(tmp_path, content: bytes):
    """Two runs, the second with ``content`` as its metrics.csv; returns that file's path."""
    good = write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    (good / "csv").mkdir()
    (good / "csv" / "metrics.csv").write_text("step,val/loss\n0,0.6\n3,0.5\n")
    bad = write_run(tmp_path, "1-sincos-s0", "sincos", 0, 0.4)
    (bad / "csv").mkdir()
    (bad / "csv" / "metrics.csv").write_bytes(content)
    return bad / "csv" / "metrics.csv"
