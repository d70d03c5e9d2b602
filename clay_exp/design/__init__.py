"""Experiment-design tools: what a study can show before anything is trained.

* `floors`: the ideal predictor's masked-patch loss without and with location (information floors):
  the shared record there, the estimators in `gaussian_world` + `hierarchical_floors`
  (`hierarchical_world`, closed form), `linear_floors` (other worlds) and `render_floors` (earth);
* `coverage`: how many training chips each tile holds at each zoom (can a level's table row learn?);
* `power`: the smallest paired difference n seeds can detect under Holm over k comparisons;
* `from_config`: the one module that reads a composed config (world, floors, coverage sets);
  `cli`: ``scripts/floors.py``, above it. Imports point one way, down this list's reverse.
"""
