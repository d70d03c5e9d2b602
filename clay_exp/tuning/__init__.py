"""Fair tuning: every arm of a study gets the same budget over its own knobs, on tuning chips and
seeds that are never reported (docs/tuning.md).

* `declaration`: ``study.tuning`` (`TuningDeclaration`) and each arm's search space (`arm_space`,
  from the encoding class's `SpatialEncoding.search_space` and the study's restrictions);
* `sampler`: the next trial's values (Optuna TPE, a pure function of the earlier trials);
* `plan`: which arms and knobs, each trial's budget, where everything goes (`make_plan`);
* `trials`: the trials as ordinary run folders (their overrides, what a folder holds);
* `runner`: running them, two at a time and resumable, and writing the chosen values to
  configs/tuned/<experiment>/<arm>.yaml (``scripts/tune.py`` is its command line);
* `estimate`: the dry run's minutes, and the recheck of an arm's trials at the full budget;
* `record`: what a run of a tuned study records in results.json (values and their source).
"""
