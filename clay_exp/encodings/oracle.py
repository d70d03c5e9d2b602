"""`oracle`: the true latent factors of a `hierarchical_world` chip, the floor any encoding could reach.

``known=seen`` (config ``oracle_seen``) keeps only the factors of tiles that hold training chips and
zeroes the others (their prior mean): what a perfect learner of the training set could know — the
*learnable* yardstick. The information floor (``known=all``) also knows the factors of tiles no
training chip visited, which no encoding can learn. ``known=coarse`` (study arm ``oracle_coarse``)
knows every level but the finest, everywhere, and never the finest: at a held-out site that is
what training could have taught (its coarse tiles hold training chips, its fine tile none), given
in the very form the model trained on — the held-out yardstick.

``level_dropout`` zeroes a level's factors for that share of training chips (as the tile tables'
remedy arms are trained): an ``oracle_seen`` trained so has met "no fine factor" in training, which
makes the zeros it reads at an unseen fine tile an input it learned, not one it never saw.

Only valid with ``data=hierarchical_world``, the one world whose batches carry its chips' latent
factors (under ``latents``, a key no other encoding reads). Like every encoding, the vector goes
through the model's linear projection: the oracle differs from the others only in what it knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
from torch import Tensor

from clay_exp.encodings.base import Knob, SpatialEncoding


class OracleEncoding(SpatialEncoding):
    """Returns the batch's ``latents`` (`factors_per_level` per level of the world) as float32.

    Args:
        levels: the world's levels (``data.world.levels``); None when the data is another world,
            which is an error: there are no latents to read.
        factors_per_level: latent factors per level, the world's (configs/encoding/oracle.yaml passes
            it; 8 is hierarchical_world's, kept here as a number: the encodings import no data code).
        known: ``all`` (the information floor), ``seen`` (only tiles holding training chips) or
            ``coarse`` (every level but the finest).
        level_dropout: share of training chips whose factors at a level are zeroed, one value for
            all levels or one per level, each in [0, 1) (evaluation never drops).
    """

    inputs = ("lat", "lon", "latents", "latents_seen")
    required_overrides = ("data=hierarchical_world",)
    KNOWN_CHOICES = ("all", "seen", "coarse")
    search_space: ClassVar[
        Mapping[str, Knob]
    ] = {}  # no parameters: the yardsticks tune the backbone's rate only

    def __init__(
        self,
        levels: Sequence[int] | None,
        factors_per_level: int = 8,
        known: str = "all",
        level_dropout: float | Sequence[float] = 0.0,
    ) -> None:
        super().__init__()
        if known not in self.KNOWN_CHOICES:
            raise ValueError(f"encoding.known={known!r} is not one of {list(self.KNOWN_CHOICES)}")
        self.known = known
        if not levels:
            raise ValueError(
                "encoding=oracle is only valid with data=hierarchical_world: it encodes that world's true "
                "latent factors, which no other world's batches carry (the composed config has no "
                f"data.world.levels, got {levels!r})"
            )
        if int(factors_per_level) < 1:
            raise ValueError(f"encoding.factors_per_level={factors_per_level!r} must be >= 1")
        self.levels = list(levels)
        if known == "coarse" and len(self.levels) < 2:
            raise ValueError(
                f"encoding.known='coarse' needs a level below the finest, got levels={self.levels}"
            )
        dropout = (
            [float(level_dropout)] * len(self.levels)
            if isinstance(level_dropout, int | float)
            else [float(p) for p in level_dropout]
        )
        if len(dropout) != len(self.levels) or not all(0.0 <= p < 1.0 for p in dropout):
            raise ValueError(
                f"encoding.level_dropout={level_dropout!r} must be a probability in [0, 1) or one per level "
                f"({self.levels})"
            )
        self.level_dropout = dropout
        self.factors_per_level = int(factors_per_level)
        self.out_dim = self.factors_per_level * len(self.levels)

    def encode(self, lat: Tensor, lon: Tensor, latents: Tensor, latents_seen: Tensor) -> Tensor:
        if latents.shape != (lat.shape[0], self.out_dim):
            raise ValueError(
                f"latents must have shape ({lat.shape[0]}, {self.out_dim}) for levels={self.levels}, "
                f"got {tuple(latents.shape)}"
            )
        dropping = self.training and any(p > 0 for p in self.level_dropout)
        if self.known == "all" and not dropping:
            return latents.float()
        per_level = latents.float().view(lat.shape[0], len(self.levels), self.factors_per_level)
        if self.known == "seen":
            keep = latents_seen.to(torch.bool)
        else:  # all; coarse: never the finest level
            keep = torch.ones(per_level.shape[:2], dtype=torch.bool, device=per_level.device)
            if self.known == "coarse":
                keep[:, -1] = False
        if dropping:
            p = torch.tensor(self.level_dropout, device=per_level.device)
            keep = keep & (torch.rand(keep.shape, device=per_level.device) >= p)
        return (per_level * keep.to(per_level.dtype)[..., None]).flatten(1)

    def extra_repr(self) -> str:
        dropout = f", level_dropout={self.level_dropout}" if any(self.level_dropout) else ""
        return f"levels={self.levels}, known={self.known}{dropout}, out_dim={self.out_dim}"
