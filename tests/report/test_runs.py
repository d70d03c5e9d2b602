"""Loading runs from a sweep's folders: every status, old records, unreadable files, Hydra-only jobs."""

from __future__ import annotations

import json

import pytest

from clay_exp.report import HYDRA, UNREADABLE, compare, latest_sweep, load_runs, to_markdown
from tests.report.factory import SETTING, record, write_hydra_files, write_run, write_truncated

#: Hydra's wrapper around a constructor's error: its first line says only which target failed.
HYDRA_ERROR = {
    "type": "InstantiationException",
    "message": "Error in call to target 'torch.optim.adam.Adam':\n"
    "ValueError('Invalid learning rate: -1')\nfull_key: model.optimizer",
    "cause": "ValueError: Invalid learning rate: -1",
}


def test_load_runs_reads_every_status(tmp_path):
    write_run(tmp_path, "0-sincos-s0", "sincos", 0, None, final={"val/loss": 0.4, "val/loss_best": None})
    write_run(tmp_path, "1-sincos-s1", "sincos", 1, None, status="running")
    write_run(
        tmp_path,
        "2-sincos-s2",
        "sincos",
        2,
        None,
        status="failed",
        error={"type": "RuntimeError", "message": "boom"},
    )
    write_hydra_files(tmp_path / "3-xyz-s0", "xyz", 0)  # what Hydra writes before the job runs
    runs = {r.path.name: r for r in load_runs(tmp_path)}
    assert runs["0-sincos-s0"].metrics == {"val/loss": 0.4}  # the non-finite value is dropped
    assert [runs[k].status for k in sorted(runs)] == ["completed", "running", "failed", "missing"]
    assert runs["2-sincos-s2"].error == "RuntimeError: boom"
    missing = runs["3-xyz-s0"]
    assert (missing.encoding, missing.seed, missing.setting) == ("xyz", 0, runs["0-sincos-s0"].setting)
    assert missing.variant == {"injection": "add"}


def test_why_is_the_innermost_error_not_hydras_wrapper(tmp_path):
    write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    write_run(tmp_path, "1-sincos-s0", "sincos", 0, None, status="failed", error=HYDRA_ERROR)
    runs = load_runs(tmp_path)
    assert runs[1].error == "ValueError: Invalid learning rate: -1"
    text = to_markdown(compare(runs))
    assert "| `1-sincos-s0` | `sincos` | 0 | failed | ValueError: Invalid learning rate: -1 |" in text
    assert "Error in call to target" not in text


def test_version_1_records_without_schema_version_still_load(tmp_path):
    """A results.json written before the typed record (no schema_version, no error.cause)."""
    old = {
        **record("sincos", 0, 0.42, injection="token"),
        "params": {"encoding": 320, "encoding_trainable": 0},
        "step_time_s": 0.25,
        "config": {"seed": 0, "model": {"optimizer": {"lr": 1e-3}}},
        "an_old_key": "kept aside",
    }
    failed = {
        **record("xyz", 1, None, status="failed"),
        "error": {"type": "RuntimeError", "message": "CUDA out of memory\nTried to allocate 2 GiB"},
    }
    for name, payload in (("0-sincos-s0", old), ("1-xyz-s1", failed)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(payload))
    ok, bad = load_runs(tmp_path)
    assert (ok.encoding, ok.seed, ok.status, ok.metrics) == ("sincos", 0, "completed", {"val/loss": 0.42})
    assert (ok.setting, ok.variant) == (SETTING, {"injection": "token"})
    assert (ok.params_encoding, ok.params_encoding_trainable, ok.step_time_s) == (320, 0, 0.25)
    assert ok.config == old["config"]
    assert bad.status == "failed" and bad.error == "RuntimeError: Tried to allocate 2 GiB"


def test_an_unreadable_record_is_a_run_left_out_not_an_error(tmp_path):
    write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    write_run(tmp_path, "1-sincos-s0", "sincos", 0, 0.4)
    broken, parse_error = write_truncated(tmp_path / "2-sincos-s1")
    write_hydra_files(tmp_path / "2-sincos-s1", "sincos", 1)  # so its setting and encoding are known
    runs = {r.path.name: r for r in load_runs(tmp_path)}
    assert len(runs) == 3
    bad = runs["2-sincos-s1"]
    assert (bad.status, bad.encoding, bad.seed, bad.setting) == (UNREADABLE, "sincos", 1, SETTING)
    assert bad.error == f"{broken}: JSONDecodeError: {parse_error}"
    (section,) = compare(list(runs.values())).sections
    sincos = next(r for r in section.rows if r.encoding == "sincos")
    assert sincos.stats["val/loss"].n == 1 and [r.path.name for r in section.not_averaged] == ["2-sincos-s1"]
    assert "| `sincos` | 1 of 2 (1 unreadable) |" in to_markdown(compare(list(runs.values())))


def test_an_unreadable_record_of_no_known_setting_is_listed_on_its_own(tmp_path):
    write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    write_run(tmp_path, "1-sincos-s0", "sincos", 0, 0.4)
    broken, parse_error = write_truncated(tmp_path / "copied")  # no Hydra files beside it
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "results.json").write_text("[1, 2]")  # JSON, but not a record
    runs = load_runs(tmp_path)
    comparison = compare(runs)
    (section,) = comparison.sections  # the good runs' table, nothing else in it
    assert sorted(r.encoding for r in section.rows) == ["none", "sincos"] and not section.not_averaged
    assert sorted(r.path.name for r in comparison.unreadable) == ["copied", "list"]
    text = to_markdown(comparison)
    listed = text.split("## Runs that could not be read (in no table)")[1]
    assert f"{broken}: JSONDecodeError: {parse_error}" in listed
    assert "not a run record" in listed and str(tmp_path / "list" / "results.json") in listed


def test_broken_hydra_files_do_not_stop_the_others(tmp_path):
    write_run(tmp_path, "0-none-s0", "none", 0, 0.5)
    job = tmp_path / "1-xyz-s0" / HYDRA.job_dir
    job.mkdir(parents=True)
    (job / HYDRA.hydra_config).write_text("hydra: [unclosed\n")
    ok, bad = load_runs(tmp_path)
    assert ok.status == "completed"
    assert bad.status == UNREADABLE and str(job) in bad.error


def test_latest_sweep_is_the_newest_dated_folder(tmp_path):
    sweeps = tmp_path / "cmp" / HYDRA.multiruns
    for name in ("2025-01-02_10-00-00", "2025-01-10_09-00-00", "2025-01-03_23-59-59"):
        (sweeps / name).mkdir(parents=True)
    assert latest_sweep(tmp_path, "cmp") == sweeps / "2025-01-10_09-00-00"
    with pytest.raises(ValueError, match="no multirun of 'other'"):
        latest_sweep(tmp_path, "other")


def test_bad_input_is_refused_early(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        load_runs(tmp_path / "nope")
    with pytest.raises(ValueError, match="no runs"):
        load_runs(tmp_path)
    with pytest.raises(ValueError, match="no folder given"):
        load_runs()


def test_sweeps_linked_into_a_folder_are_read_once(tmp_path):
    """A study folder that links its sweeps (``ln -s``) is read through the links; a link back up
    (a loop) or a second link to the same sweep adds nothing."""
    sweep = tmp_path / "elsewhere" / "sweep"
    write_run(sweep, "0-none-s0", "none", 0, 0.5)
    write_hydra_files(sweep / "1-xyz-s0", "xyz", 0)
    study = tmp_path / "study"
    study.mkdir()
    (study / "a").symlink_to(sweep)
    (study / "b").symlink_to(sweep)
    (study / "loop").symlink_to(study)
    runs = load_runs(study)
    assert sorted((r.encoding, r.status) for r in runs) == [("none", "completed"), ("xyz", "missing")]
