"""Fair tuning: every arm of a study gets the same budget over its own knobs, on tuning chips and
seeds that are never reported (docs/tuning.md).

* `declaration`: ``study.tuning`` (`TuningDeclaration`) and each arm's search space (`arm_space`,
  from the encoding class's `SpatialEncoding.search_space` and the study's restrictions);
* `sampler`: the next trial's values (Optuna TPE, a pure function of the earlier trials);
* `runner`: the plan, the trials as ordinary run folders (resumable), the chosen values written
  to configs/tuned/<experiment>/<arm>.yaml (``scripts/tune.py`` is its command line);
* `record`: what a run of a tuned study records in results.json (values and their source).
"""
