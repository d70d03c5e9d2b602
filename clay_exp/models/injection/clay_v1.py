"""``injection=clay_v1``: what Clay v1 does, the 2-D sin/cos positions at width ``embed_dim - 8`` and
``[time (4), location (4)]`` in the last 8 dims, added to the patch embeddings before masking and
to the decoder's positions (the package docstring has all four injections side by side).

Clay v1, as read in its released code
-------------------------------------
* ``Clay-foundation/model``, ``src/model.py`` (``claymodel/model.py`` in later releases),
  ``Encoder.add_encodings``: ``posemb_sincos_2d_with_gsd(h, w, dim=self.dim - 8, gsd)`` (``[L, D-8]``),
  then ``time_latlon = torch.hstack((time, latlon)).detach()`` (``[B, 8]``: **time first, then
  latlon**), repeated over the ``L`` patches, concatenated after the positions and added to the
  patch embeddings; masking (``mask_out``) comes after. ``Decoder.reconstruct_and_add_encoding``
  does the same at the decoder width (``self.dim - 8``) for masked and visible patches.
* ``claymodel/datamodule.py``, ``EODataset.__getitem__``: ``time = hstack(week_norm, hour_norm)``,
  ``latlon = hstack(lat_norm, lon_norm)``, and ``if random.random() < 0.2: time.zero_(); latlon.zero_()``.
  That dropout happens in the *dataset*, once per ``.npz`` file, which holds a cube of 128 chips
  (``CUBESIZE`` in ``Clay-foundation/stacchip``, ``stacchip/processors/prechip.py``): all chips of
  one file are zeroed together, and the validation set (the same ``EODataset`` class) is dropped
  too.
* ``stacchip/processors/prechip.py``: ``normalize_timestamp(date)``: ``week = isoweek * 2π / 52``,
  ``hour = date.hour * 2π / 24`` (a date without a time is taken at 12:00), giving
  ``week_norm = (sin week, cos week)``, ``hour_norm = (sin hour, cos hour)``;
  ``normalize_latlon(bounds)``: the chip centre in radians, ``((sin lat, cos lat), (sin lon, cos lon))``.
  Note: its caller unpacks that as ``lon_norm, lat_norm = normalize_latlon(bounds)``, so the
  training cubes hold ``[sin lon, cos lon, sin lat, cos lat]`` under the ``latlon`` key, while
  Clay's inference notebooks pass ``[sin lat, cos lat, sin lon, cos lon]``. We use the documented
  order (what ``encoding=sincos`` returns); for a model trained from scratch the order of four
  fixed input dims is immaterial.

Where clay-exp differs from Clay v1, on purpose:
* the first ``embed_dim - 8`` dims are timm's 2-D sin/cos (``build_sincos2d_pos_embed``), the
  positions every other injection uses, not Clay's GSD-scaled ones (all our chips share one GSD);
* the dropout (``location_dropout``, default 0.2 as in Clay) is per chip and in training only:
  validation never drops, so ``val/loss`` is the loss *with* location and is comparable across
  injections. It draws one number per chip from the RNG the MAE masks with (the global torch RNG in
  training, seeded by ``seed``), so runs are reproducible. Dropped chips get zeros in exactly the
  last 8 dims, at the encoder and at the decoder;
* the location vector of any encoding other than ``sincos`` is mapped to the 4 dims by a learned
  ``Linear(location_dim, 4)`` (gradients flow through it; Clay detaches its fixed values).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clay_exp.data.time import CLAY_V1_TIME_DIMS
from clay_exp.models.injection.base import CLAY_V1_LOCATION_DIMS, Injection


class ClayV1Injection(Injection):
    name = "clay_v1"
    reserved_dims = CLAY_V1_TIME_DIMS + CLAY_V1_LOCATION_DIMS
    default_location_dropout = 0.2  # Clay v1's share

    def __init__(
        self,
        *,
        location_dim: int,
        embed_dim: int,
        decoder_embed_dim: int,
        location_dropout: float | None = None,
        location_projection: str = "auto",
        location_is_clay_latlon: bool = False,
        **kwargs,
    ) -> None:
        r = self.reserved_dims
        for key, width in (("embed_dim", embed_dim), ("decoder_embed_dim", decoder_embed_dim)):
            if width < r + 4 or (width - r) % 4:
                raise ValueError(
                    f"injection=clay_v1 needs {key} >= {r + 4} with {key} - {r} a multiple of 4 (the "
                    f"last {r} dims carry time and location, the rest the 2-D sin/cos positions), "
                    f"got {key}={width}"
                )
        super().__init__(
            location_dim=location_dim,
            embed_dim=embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            location_dropout=location_dropout,
            location_projection=location_projection,
            location_is_clay_latlon=location_is_clay_latlon,
            **kwargs,
        )
        if location_projection == "auto":
            location_projection = "identity" if location_is_clay_latlon else "linear"
        if location_projection == "identity" and location_dim not in (0, CLAY_V1_LOCATION_DIMS):
            raise ValueError(
                f"location_projection='identity' packs the location vector as it is into "
                f"{CLAY_V1_LOCATION_DIMS} dims, but the encoding gives {location_dim}; use 'linear' "
                f"(or 'auto')"
            )
        self.projection = location_projection if location_dim > 0 else "none"
        self.proj = nn.Linear(location_dim, CLAY_V1_LOCATION_DIMS) if self.projection == "linear" else None
        self._make_missing_token(CLAY_V1_LOCATION_DIMS)

    def condition(self, batch_size, location, time, generator, known=None):
        """``(B, 8)`` = ``[time (4), location (4)]``; for chips without a location (dropped in training,
        or not known) zeros in all 8 (``zero``, ``skip``) or the learned 4 location values (``token``)."""
        ref, b = self.pos_embed, batch_size
        if time is None:
            time = ref.new_zeros(b, CLAY_V1_TIME_DIMS)
        elif tuple(time.shape) != (b, CLAY_V1_TIME_DIMS):
            raise ValueError(
                f"time must have shape ({b}, {CLAY_V1_TIME_DIMS}) = [sin week, cos week, sin hour, "
                f"cos hour] (see clay_v1_time), got {tuple(time.shape)}"
            )
        if self.projection == "none":
            loc = ref.new_zeros(b, CLAY_V1_LOCATION_DIMS)
        elif self.projection == "identity":
            loc = location
        else:
            loc = self.proj(location.to(self.proj.weight.dtype))
        present = self.present_chips(b, known, generator, ref.device)
        if present is not None and self.missing_token is not None:
            loc = torch.where(present[:, None], loc.to(ref.dtype), self.missing_token.to(ref.dtype))
        meta = torch.cat([time.to(ref.dtype), loc.to(ref.dtype)], dim=-1)
        if present is not None and self.missing_token is None:
            meta = meta * present.to(meta.dtype)[:, None]
        return meta

    def _with_meta(self, pos: Tensor, meta: Tensor) -> Tensor:
        b, n = meta.shape[0], pos.shape[1]
        return torch.cat([pos.expand(b, -1, -1), meta[:, None, :].expand(-1, n, -1)], dim=-1)

    def encoder_positions(self, cond):
        return self._with_meta(self.pos_embed, cond)

    def decoder_positions(self, cond):
        return self._with_meta(self.decoder_pos_embed, cond)

    def extra_repr(self) -> str:
        return (
            f"location_dim={self.location_dim}, projection={self.projection}, "
            f"location_dropout={self.location_dropout}, missing={self.missing}"
        )
