"""Time features of a chip: Clay v1's week and hour, the batch's optional ``time`` key.

The data produces them (`clay_exp.data.geotiff` from the files' acquisition dates, `clay_exp.data.scenes`
zeros for an undated scene) and the model reads them (``injection=clay_v1``,
`clay_exp.models.injection`): both import this module, so the data never imports the model.

Batch contract for ``time`` (optional): a float tensor ``(B, CLAY_V1_TIME_DIMS)``,
``[sin w, cos w, sin h, cos h]`` with ``w = 2π · isoweek / 52`` and ``h = 2π · hour / 24``; zeros mean
"unknown" (Clay v1's value for a chip without a time).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: The time features per chip: ``[sin w, cos w, sin h, cos h]``.
CLAY_V1_TIME_DIMS = 4


def clay_v1_time(week: Tensor, hour: Tensor) -> Tensor:
    """Clay v1's time features ``(B, 4)``: ``[sin w, cos w, sin h, cos h]``.

    ``w = 2π · week / 52`` (ISO week of year, 1..53) and ``h = 2π · hour / 24`` (hour of day, 0..23;
    Clay takes 12 for a date without a time), as ``normalize_timestamp`` in Clay's chipping code.
    """
    w = week.double() * (2 * math.pi / 52)
    h = hour.double() * (2 * math.pi / 24)
    return torch.stack([w.sin(), w.cos(), h.sin(), h.cos()], dim=-1).float()
