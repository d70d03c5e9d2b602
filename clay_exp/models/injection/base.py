"""The base class every injection extends (`Injection`: the plain MAE, positions only), the fixed
2-D sin/cos patch positions, and the choices every injection shares (``missing``,
``location_projection``). What the hooks mean: the package docstring, `clay_exp.models.injection`."""

from __future__ import annotations

from typing import ClassVar

import torch
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from torch import Tensor, nn

LOCATION_PROJECTION_CHOICES = ("auto", "linear", "identity")
#: What a chip whose location is missing gets (package docstring, "A chip without a location").
MISSING_CHOICES = ("zero", "token", "skip")
#: The dims Clay v1 reserves at the end of the position encoding: time (4, `CLAY_V1_TIME_DIMS`) then
#: location (4).
CLAY_V1_LOCATION_DIMS = 4


def sincos_positions(grid: int, dim: int, what: str) -> Tensor:
    """timm's fixed 2-D sin/cos patch positions ``(1, grid*grid, dim)``; ``dim`` must be a positive
    multiple of 4 (timm only asserts it), ``what`` names the setting in the error."""
    if dim < 4 or dim % 4:
        raise ValueError(
            f"the 2-D sin/cos patch positions need a width that is a positive multiple of 4, got {what}"
        )
    return build_sincos2d_pos_embed([grid, grid], dim)[None]


class Injection(nn.Module):
    """Base class: the plain MAE (positions only, nothing from the location)."""

    name: ClassVar[str] = ""
    #: trailing dims of the encoder and decoder positions that the injection fills itself
    reserved_dims: ClassVar[int] = 0
    #: the share of training chips whose location is dropped when ``location_dropout`` is None
    default_location_dropout: ClassVar[float] = 0.0

    def __init__(
        self,
        *,
        location_dim: int,
        embed_dim: int,
        decoder_embed_dim: int,
        grid: int,
        depth: int,
        location_dropout: float | None = None,
        missing: str = "zero",
        location_projection: str = "auto",
        location_is_clay_latlon: bool = False,
    ) -> None:
        super().__init__()
        if missing not in MISSING_CHOICES:
            raise ValueError(f"missing={missing!r} is not one of {list(MISSING_CHOICES)}")
        if location_projection not in LOCATION_PROJECTION_CHOICES:
            raise ValueError(
                f"location_projection={location_projection!r} is not one of "
                f"{list(LOCATION_PROJECTION_CHOICES)}"
            )
        if location_projection == "identity" and self.name != "clay_v1":
            raise ValueError(
                f"location_projection='identity' only works with injection=clay_v1 (which packs 4 "
                f"location values as they are); injection={self.name} projects to the model width"
            )
        if location_dropout is None:
            location_dropout = self.default_location_dropout
        if not 0.0 <= location_dropout <= 1.0:
            raise ValueError(f"location_dropout={location_dropout!r} must lie in [0, 1]")
        self.location_dim = location_dim
        self.location_dropout = float(location_dropout)
        self.missing = missing
        #: ``missing=token``'s learned stand-in (created by an injection that has a location term)
        self.missing_token: nn.Parameter | None = None
        r = self.reserved_dims
        pos = sincos_positions(
            grid, embed_dim - r, f"embed_dim - {r} = {embed_dim - r} (embed_dim={embed_dim})"
        )
        dec = sincos_positions(
            grid,
            decoder_embed_dim - r,
            f"decoder_embed_dim - {r} = {decoder_embed_dim - r} (decoder_embed_dim={decoder_embed_dim})",
        )
        self.register_buffer("pos_embed", pos, persistent=False)
        self.register_buffer("decoder_pos_embed", dec, persistent=False)

    @property
    def prefix_tokens(self) -> int:
        """How many tokens `prefix` prepends to the encoder sequence when every chip has a location."""
        return 0

    def prefix_count(self, cond) -> int:
        """How many tokens `prefix` prepends in this forward pass (``token`` + ``skip``: 0 when no
        chip of the batch has a location)."""
        return self.prefix_tokens

    def attention_mask(self, cond, tokens: int) -> Tensor | None:
        """A boolean ``(B, 1, tokens, tokens)`` mask for the Transformer blocks (True: may attend),
        or None: every token sees every other (all but ``token`` + ``skip`` in a mixed batch)."""
        return None

    def _make_missing_token(self, width: int) -> None:
        """``missing=token``'s learned vector of `width`, zero at the start (draws no random numbers,
        so every other weight is initialised as without it)."""
        if self.missing == "token" and self.location_dim > 0:
            self.missing_token = nn.Parameter(torch.zeros(width))

    def present_chips(
        self, batch_size: int, known: Tensor | None, generator: torch.Generator | None, device: torch.device
    ) -> Tensor | None:
        """Which chips have a location in this pass, ``(B,)`` bool: the batch's ``known`` mask and, in
        training, the dropout draw (one number per chip from `generator`); None when nothing can be
        missing (no mask, no dropout), so the injection takes its plain path."""
        present = None if known is None else known.to(device=device, dtype=torch.bool)
        if self.training and self.location_dropout > 0:
            draw = torch.rand(batch_size, device=device, generator=generator)
            kept = draw >= self.location_dropout
            present = kept if present is None else present & kept
        return present

    def init_weights(self) -> None:
        """Called after the MAE's own (xavier) initialisation of every Linear; the default keeps it."""

    def location_parameters(self) -> list[nn.Parameter]:
        """Every parameter of an injection exists only to carry the location signal."""
        return list(self.parameters())

    def condition(
        self,
        batch_size: int,
        location: Tensor | None,
        time: Tensor | None,
        generator: torch.Generator | None,
        known: Tensor | None = None,
    ):
        """What the other hooks need from the chips' locations (and times); once per forward pass.

        ``location`` is ``(B, location_dim)`` (checked by the MAE) or None without one; ``generator``
        is the one the MAE masks with (None: the global torch RNG); ``known`` ``(B,)`` bool marks the
        chips whose location is known (None: all), the others take the ``missing`` path."""
        return None

    def encoder_positions(self, cond) -> Tensor:
        return self.pos_embed

    def decoder_positions(self, cond) -> Tensor:
        return self.decoder_pos_embed

    def prefix(self, cond) -> Tensor | None:
        return None

    def after_block(self, index: int, x: Tensor, cond) -> Tensor:
        return x

    def extra_repr(self) -> str:
        return f"location_dim={self.location_dim}"
