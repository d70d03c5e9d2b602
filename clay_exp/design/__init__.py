"""Experiment-design tools: what a study can show before anything is trained.

* `floors`: the ideal predictor's masked-patch loss without and with location (information floors);
* `coverage`: how many training chips each tile holds at each zoom (can a level's table row learn?);
* `power`: the smallest paired difference n seeds can detect under Holm over k comparisons.
"""
