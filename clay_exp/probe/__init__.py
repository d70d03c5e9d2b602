"""The location probe: how much of a real map can each encoding, alone, recover from a location?

No images and no MAE: each encoding is fitted with the same small MLP head (and the same budget) to
predict a label of the `earth` world from the location only, and scored on locations it never saw:

* ``land``: the land/sea flag (1 km GLOBE mask) of points uniform by area on the sphere;
* ``zone``: the Köppen–Geiger zone (32 classes, ``Ocean`` included for coast pixels) of points
  uniform by area over land.

The encoding's learnable parts train together with the head (its own parameter groups and learning
rate scales, as in training); an encoding without trainable parameters is evaluated once and only
the head trains. ``none`` sees no location, so it learns the class prior: the majority-class rate.

**Points.** Drawn by `EarthWorld` (uniform by area, fixed by ``world_seed`` and the split, not by the
run seed, so seeds pair up). With ``split=region`` (the default) whole z3 tiles are held out as in
training (`clay_exp.data.splits`): ``train`` and ``test`` points lie outside them, ``test_heldout``
points inside. ``test`` asks whether the encoding separates places near the ones it was fitted on;
``test_heldout`` whether what it learned carries over to regions it never saw (memorising vs
generalising).

**Scores** (torchmetrics, on the test sets): accuracy, balanced accuracy (mean recall over the
classes present) and macro-F1; the same on the training points (``train/*``, in ``runs.csv``) shows
what was memorised. Written with `clay_exp.report`: ``comparison.md``/``.csv``, ``runs.csv`` and
``final_loss.png`` (here: accuracy per encoding). Encodings that cannot run on locations alone
(``oracle`` needs ``latents``) or whose optional package is missing are listed as skipped, with the
reason.

One concern per module: `tasks` (the tasks, their points and labels), `fit` (the head, the fit
loop, the scores), `run` (every encoding × task × seed, and the files); the command line is
``scripts/probe.py``.
"""

from clay_exp.probe.fit import (
    EVAL_CHUNK,
    SCORES,
    FitSettings,
    ProbeFit,
    ProbeHead,
    fit_probe,
    scores,
)
from clay_exp.probe.run import (
    PROBE_INPUTS,
    ProbeResult,
    build_encoding,
    check_encodings,
    default_out_dir,
    probe_metrics,
    run_probe,
    skip_reason,
    write_probe,
)
from clay_exp.probe.tasks import (
    HELDOUT_TEST_SET,
    N_TEST,
    N_TRAIN,
    TASK_CHOICES,
    TASKS,
    TEST_SET,
    PointSet,
    ProbeTask,
    SplitSettings,
    TaskData,
    check_tasks,
    sample_points,
)

__all__ = [
    "EVAL_CHUNK",
    "HELDOUT_TEST_SET",
    "N_TEST",
    "N_TRAIN",
    "PROBE_INPUTS",
    "SCORES",
    "TASKS",
    "TASK_CHOICES",
    "TEST_SET",
    "FitSettings",
    "PointSet",
    "ProbeFit",
    "ProbeHead",
    "ProbeResult",
    "ProbeTask",
    "SplitSettings",
    "TaskData",
    "build_encoding",
    "check_encodings",
    "check_tasks",
    "default_out_dir",
    "fit_probe",
    "probe_metrics",
    "run_probe",
    "sample_points",
    "scores",
    "skip_reason",
    "write_probe",
]
