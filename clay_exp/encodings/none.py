"""`none`: no location signal at all, the baseline every other encoding is measured against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor

from clay_exp.encodings.base import Knob, SpatialEncoding


class NoEncoding(SpatialEncoding):
    """Returns a ``(B, 0)`` tensor; the model then adds nothing (and ``token`` injection adds no token)."""

    search_space: ClassVar[Mapping[str, Knob]] = {}  # no parameters: its arms tune the backbone's rate only

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        return lat.new_zeros((lat.shape[0], 0), dtype=torch.float32)
