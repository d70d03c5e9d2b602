"""The encoding-diagnostics callback logs per-level row and update norms during a real (tiny) run."""

from __future__ import annotations

import math

import pytest

from clay_exp.callbacks import EncodingDiagnostics
from clay_exp.train import train
from tests.helpers import TINY, column, read_metrics


def test_hierarchical_run_logs_per_level_norms_every_n_steps(make_cfg, tmp_path):
    cfg = make_cfg(
        [
            "encoding=hierarchical",
            "trainer.max_steps=4",
            "trainer.log_every_n_steps=2",
            "trainer.limit_val_batches=1",
            *TINY,
        ]
    )
    assert cfg.callbacks.encoding_diagnostics.every_n_steps == 2
    train(cfg)
    rows = read_metrics(tmp_path)
    logged = [r for r in rows if r.get("enc/z00/update_norm")]
    assert [int(r["step"]) for r in logged] == [1, 3]  # the steps train/loss is logged at
    assert [int(r["step"]) for r in rows if r.get("train/loss")] == [1, 3]
    for z in ("z00", "z05", "z10", "z15"):
        for kind in ("row_norm", "update_norm"):
            values = column(logged, f"enc/{z}/{kind}")
            assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values)
    # count scaling: the global row's update is ~1e-6 of the chip tile's
    z00, z15 = column(logged, "enc/z00/update_norm"), column(logged, "enc/z15/update_norm")
    assert all(a < 1e-4 * b for a, b in zip(z00, z15, strict=True))
    assert column(rows, "lr-AdamW/encoding/z00")[0] == pytest.approx(
        1e-6 * column(rows, "lr-AdamW/encoding/z15")[0], rel=1e-9
    )


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_every_n_steps_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match=f"every_n_steps={bad!r} must be an integer >= 1"):
        EncodingDiagnostics(every_n_steps=bad)
