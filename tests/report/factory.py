"""Runs and run folders with known numbers, for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clay_exp.report import Run
from clay_exp.results import write_results

#: Per-seed val/loss of three encodings: the baseline, one in between, the yardstick.
LOSSES = {
    "none": [0.50, 0.52, 0.51],
    "sincos": [0.45, 0.47, 0.44],
    "oracle": [0.40, 0.41, 0.39],
}
SETTING = {"experiment": "cmp", "data": "synthetic"}


def run(encoding: str, seed: int, loss: float | None, status: str = "completed", **extra: Any) -> Run:
    """A report `Run` (as load_runs would give it) with val/loss = `loss`."""
    metrics = {} if loss is None else {"val/loss": loss}
    metrics |= extra.pop("metrics", {})
    return Run(
        path=Path(f"/sweep/{encoding}-s{seed}"),
        encoding=encoding,
        seed=seed,
        status=status,
        metrics=metrics,
        setting=dict(SETTING),
        variant={"injection": extra.pop("injection", "add")},
        **extra,
    )


def record(encoding: str, seed: int, loss: float | None, status: str = "completed", **extra: Any) -> dict:
    """The content of a ``results.json`` as clay_exp.train writes it."""
    return {
        "status": status,
        "experiment": SETTING["experiment"],
        "data": SETTING["data"],
        "encoding": encoding,
        "injection": extra.pop("injection", "add"),
        "seed": seed,
        "final": {} if loss is None else {"val/loss": loss},
        **extra,
    }


def write_run(sweep: Path, name: str, *args: Any, **kw: Any) -> Path:
    """A job folder `name` of `sweep` with its results.json (the current schema)."""
    return write_results(sweep / name, record(*args, **kw)).parent


def write_hydra_files(job: Path, encoding: str, seed: int, injection: str = "add") -> None:
    """What Hydra writes into a job folder at the job's start."""
    hydra = job / ".hydra"
    hydra.mkdir(parents=True, exist_ok=True)
    (hydra / "config.yaml").write_text(
        f"experiment_name: {SETTING['experiment']}\nseed: {seed}\ninjection: {injection}\n"
    )
    (hydra / "hydra.yaml").write_text(
        f"hydra:\n  runtime:\n    choices:\n      encoding: {encoding}\n      data: {SETTING['data']}\n"
    )


def write_truncated(job: Path, encoding: str = "sincos", seed: int = 2) -> tuple[Path, str]:
    """A results.json cut short (a full disk, a copy that stopped); returns it and json's error."""
    text = json.dumps(record(encoding, seed, 0.4), indent=2)[:37]
    job.mkdir(parents=True, exist_ok=True)
    (job / "results.json").write_text(text)
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        return job / "results.json", str(error)
    raise AssertionError("the truncated text parsed")


def study_node(comparisons: list[tuple[str, str, str]], **fields: Any) -> dict[str, Any]:
    """A ``study`` config node declaring `comparisons` (a, b, expect) on val/loss."""
    return {
        "name": "toy",
        "question": "Which arm is best?",
        "measures": "budget",
        "baseline": "none",
        "yardsticks": ["oracle"],
        "metrics": ["val/loss"],
        "alpha": 0.05,
        "comparisons": [{"a": a, "b": b, "metric": "val/loss", "expect": e} for a, b, e in comparisons],
        **fields,
    }


def study_runs(losses: dict[str, list[float]], study: dict[str, Any] | None, **config: Any) -> list[Run]:
    """Completed runs of a study: seed s of arm e has val/loss ``losses[e][s]``."""
    node = {} if study is None else {"study": study}
    return [
        run(e, s, v, config={**config, **node, "seed": s}, steps=100)
        for e, values in losses.items()
        for s, v in enumerate(values)
    ]


def mixed_runs() -> list[Run]:
    """Every encoding of `LOSSES` at seeds 0-2 (encoding params 0, 10, 20), plus a failed `sincos`
    run (seed 3) and a `xyz` run still running: what a typical sweep folder holds."""
    out = [
        run(e, s, v, params_encoding=10 * i)
        for i, (e, vs) in enumerate(LOSSES.items())
        for s, v in enumerate(vs)
    ]
    out.append(run("sincos", 3, None, status="failed", error="ValueError: Invalid learning rate: -1"))
    out.append(run("xyz", 0, None, status="running"))
    return out
