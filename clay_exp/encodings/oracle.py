"""`oracle`: the true latent factors of a `hierarchical_world` chip, the floor any encoding could reach.

``known=seen`` (config ``oracle_seen``) keeps only the factors of tiles that hold training chips and
zeroes the others (their prior mean): what a perfect learner of the training set could know — the
*learnable* yardstick. The information floor (``known=all``) also knows the factors of tiles no
training chip visited, which no encoding can learn.

Only valid with ``data=hierarchical_world``, the one world whose batches carry its chips' latent
factors (under ``latents``, a key no other encoding reads). Like every encoding, the vector goes
through the model's linear projection: the oracle differs from the others only in what it knows.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from clay_exp.encodings.base import SpatialEncoding


class OracleEncoding(SpatialEncoding):
    """Returns the batch's ``latents`` (`factors_per_level` per level of the world) as float32.

    Args:
        levels: the world's levels (``data.world.levels``); None when the data is another world,
            which is an error: there are no latents to read.
        factors_per_level: latent factors per level, the world's (configs/encoding/oracle.yaml passes
            it; 8 is hierarchical_world's, kept here as a number: the encodings import no data code).
        known: ``all`` (the information floor) or ``seen`` (only tiles holding training chips).
    """

    inputs = ("lat", "lon", "latents", "latents_seen")
    required_overrides = ("data=hierarchical_world",)
    KNOWN_CHOICES = ("all", "seen")

    def __init__(self, levels: Sequence[int] | None, factors_per_level: int = 8, known: str = "all") -> None:
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
        self.factors_per_level = int(factors_per_level)
        self.out_dim = self.factors_per_level * len(self.levels)

    def encode(self, lat: Tensor, lon: Tensor, latents: Tensor, latents_seen: Tensor) -> Tensor:
        if latents.shape != (lat.shape[0], self.out_dim):
            raise ValueError(
                f"latents must have shape ({lat.shape[0]}, {self.out_dim}) for levels={self.levels}, "
                f"got {tuple(latents.shape)}"
            )
        if self.known == "all":
            return latents.float()
        per_level = latents.float().view(lat.shape[0], len(self.levels), self.factors_per_level)
        return (per_level * latents_seen.to(per_level.dtype)[..., None]).flatten(1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, known={self.known}, out_dim={self.out_dim}"
