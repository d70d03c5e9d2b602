"""`space2vec_theory`: Space2Vec's "theory" encoder (Mai et al., 2020) on longitude/latitude in degrees.

The point ``v = (λ, φ)`` is projected on three unit vectors 120° apart (0°, 120°, 240°) and each
projection gives ``[sin(a_j·v / r_s), cos(a_j·v / r_s)]`` at ``S`` scales (output 6S, laid out as
TorchSpatial's ``Space2Vec-theory``: scale, direction, sin/cos), then an MLP (the papers' one hidden
layer). Radii ``r_s`` are in **degrees**, geometric from ``r_min`` to ``r_max``.

Periodicity as in `space2vec_grid`: with ``periodic: true`` (the default) the longitude coefficient
``cos θ_j / r_s`` of every sinusoid is rounded to a whole number of cycles per 360° (at least one),
the latitude coefficient ``sin θ_j / r_s`` is left exact, so λ = ±180° give the same features.
"""

from __future__ import annotations

import math

from clay_exp.encodings.multiscale import PlaneWaveEncoding

# as the reference code writes them: exact halves, so rounding longitude coefficients sees −0.5 exactly
DIRECTIONS = ((1.0, 0.0), (-0.5, math.sqrt(3) / 2), (-0.5, -math.sqrt(3) / 2))  # 0°, 120°, 240°


class Space2VecTheoryEncoding(PlaneWaveEncoding):
    directions = DIRECTIONS
