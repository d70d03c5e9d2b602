"""`space2vec_grid`: Space2Vec's "grid" encoder (Mai et al., 2020) on longitude/latitude in degrees.

Each coordinate on its own at ``S`` scales: ``[sin(λ/r_s), cos(λ/r_s), sin(φ/r_s), cos(φ/r_s)]`` for
every s (output 4S), then an MLP (the papers' one hidden layer). Radii ``r_s`` are in **degrees**,
geometric from ``r_min`` to ``r_max`` (see `multiscale.PlaneWaveEncoding`).

On raw degrees the published encoder is not periodic: ``sin(180/r)`` ≠ ``sin(−180/r)``. With
``periodic: true`` (the default) each longitude frequency is rounded to a whole number of cycles per
360° (at least one), so λ = ±180° give the same features; latitude frequencies are left exact.
Fine scales move by less than half a cycle per globe; with the defaults the 18 coarsest of the 64
scales (r > 38°, less than 1.5 cycles per globe) all become one cycle per globe in longitude.
"""

from __future__ import annotations

from clay_exp.encodings.multiscale import PlaneWaveEncoding

AXES = ((1.0, 0.0), (0.0, 1.0))  # λ, then φ


class Space2VecGridEncoding(PlaneWaveEncoding):
    directions = AXES
