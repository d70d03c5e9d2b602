"""How the location vector enters the MAE: one class per ``injection=`` choice, chosen by name.

A spatial encoding gives the MAE one ``(B, location_dim)`` vector per chip. An injection turns it
into a *condition* once per forward pass and then acts at up to four places of the MAE:

* ``encoder_positions(cond)``: what is added to the patch embeddings before masking (the fixed 2-D
  sin/cos patch positions, plus whatever the injection adds there);
* ``prefix(cond)``: tokens prepended to the visible patches (kept through the decoder, dropped
  before the pixel prediction);
* ``after_block(i, x, cond)``: a change to the tokens after encoder block ``i``;
* ``decoder_positions(cond)``: what is added to the decoder's full token sequence.

The four choices:

``add``
    ``Linear(location_dim, embed_dim)`` of the vector added to every patch token (before masking).
``token``
    the same projection as one extra token in front of the visible patches.
``clay_v1``
    what Clay v1 does (below): the 2-D sin/cos positions at width ``embed_dim - 8`` and
    ``[time (4), location (4)]`` in the last 8 dims, the whole added to the patch embeddings before
    masking, and the same 8 values in the last 8 dims of the decoder's positions.
``film``
    FiLM (Perez et al., 2018) on every encoder block's output:
    ``x = x * (1 + γ_l(h)) + β_l(h)`` with ``h = SiLU(Linear(location_dim, embed_dim)(v))`` and
    ``γ_l, β_l`` one ``Linear(embed_dim, 2 * embed_dim)`` per block, initialised to zero, so that
    training starts from the plain MAE (the adaLN-Zero idea of DiT, Peebles & Xie 2023). After the
    block (not on its input) so that the last block's output is modulated too, and the modulation
    acts on all visible tokens alike.

With ``location_dim == 0`` (the ``none`` encoding) ``add``/``token``/``film`` add nothing and create
no parameters; ``clay_v1`` keeps its 8 dims, with zeros for the location (and the time if the
batch has none), so ``none`` and the other encodings differ only in those 4 values.

A chip without a location
-------------------------
A chip's location may be *missing*: the batch says so (``location_known``, see `clay_exp.module`),
the run drops it in training (``location_dropout``, a share of the training chips drawn per chip
from the RNG the MAE masks with; validation never drops), or the reliance evaluation withholds it
(`clay_exp.reliance`). What such a chip gets is ``missing=`` (the same for all three):

``zero``
    the location vector the encoding gives is zeroed before the injection projects it (Clay v1's
    way): ``add``/``token``/``film`` then carry ``Linear(0)`` = the projection's bias; ``clay_v1``
    zeroes all 8 dims, time included, as Clay v1's dropout does.
``token``
    a learned vector stands in for the chip's location term (Copernicus-FM's learned "missing"
    embedding): in place of the projected vector for ``add``/``token``, of FiLM's hidden vector
    ``h`` for ``film``, of the 4 location dims for ``clay_v1`` (its time dims stay). It starts at
    zero (no random draw: the other weights are initialised as without it) and learns only from
    chips whose location is missing, so it needs ``location_dropout > 0`` to train.
``skip``
    no location term at all (Prithvi's way when a location is absent): ``add`` adds nothing,
    ``film`` leaves the blocks unmodulated, ``token`` has no location token (a batch whose chips
    all lack it has one token fewer; in a mixed batch the absent chips' token is hidden from every
    other token by the attention mask, so their patches see what they would without it);
    ``clay_v1`` has no way to leave its 8 dims out, so skip zeroes them, as ``zero``.

``location_dropout`` is None by default: the injection's own default, `Injection.default_location_dropout`
(0.2 for ``clay_v1``, as Clay v1; 0 for the others, whose runs are thus unchanged). With no chip
missing, no injection does anything it did not do before (no extra random draw either).

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

Batch contract for ``time`` (optional): a float tensor ``(B, 4)``,
``[sin w, cos w, sin h, cos h]`` with ``w = 2π · isoweek / 52`` and ``h = 2π · hour / 24``
(`clay_exp.data.time`, where the data makes it). Only ``clay_v1`` reads it; without it the 4 time
dims are zeros.

How the model knows to pass the location "as is": the encoding says so. `SpatialEncoding` has a
class flag ``clay_v1_latlon`` (true for ``sincos`` only: its output *is* Clay's 4 values), which the
LightningModule hands to the backbone. ``model.backbone.location_projection`` (``auto`` default)
follows that flag; ``linear`` forces the learned map (an ablation for ``sincos``), ``identity``
forces the values through unmapped and needs ``location_dim == 4``. The flag lives with the
encoding because only the encoding knows what its numbers mean (``out_dim == 4`` alone does not say
they are sin/cos of latitude and longitude); the backbone still knows nothing of geography.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from torch import Tensor, nn

from clay_exp.data.time import CLAY_V1_TIME_DIMS

LOCATION_PROJECTION_CHOICES = ("auto", "linear", "identity")
#: What a chip whose location is missing gets (module docstring, "A chip without a location").
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


class Condition(NamedTuple):
    """The per-chip location term of ``add``/``token``/``film`` for one forward pass."""

    term: Tensor  # (B, embed_dim): the projected vector (film: the hidden h)
    #: (B,) bool with ``missing=skip``: the chips that have a term (the others get none); else None
    present: Tensor | None = None


class _Projected(Injection):
    """``Linear(location_dim, embed_dim)`` of the location vector, or nothing without one."""

    def __init__(self, *, location_dim: int, embed_dim: int, **kwargs) -> None:
        super().__init__(location_dim=location_dim, embed_dim=embed_dim, **kwargs)
        self.proj = nn.Linear(location_dim, embed_dim) if location_dim > 0 else None
        self._make_missing_token(embed_dim)

    def project(self, location: Tensor) -> Tensor:
        """The location term of chips with a location."""
        return self.proj(location)

    def condition(self, batch_size, location, time, generator, known=None):
        if self.proj is None:
            return None
        # encodings return float32; the model may run in another dtype (e.g. .double() in tests)
        v = location.to(self.proj.weight.dtype)
        present = self.present_chips(batch_size, known, generator, v.device)
        if present is None:  # every chip has its location: the plain path
            return Condition(self.project(v))
        has = present[:, None]
        if self.missing == "zero":  # the vector zeroed before the projection
            return Condition(self.project(torch.where(has, v, torch.zeros_like(v))))
        if self.missing == "token":
            return Condition(torch.where(has, self.project(v), self.missing_token.to(v.dtype)))
        return Condition(self.project(v), present)  # skip: the hooks leave the absent chips alone


class AddInjection(_Projected):
    name = "add"

    def encoder_positions(self, cond):
        if cond is None:
            return self.pos_embed
        term = cond.term if cond.present is None else torch.where(cond.present[:, None], cond.term, 0.0)
        return self.pos_embed + term[:, None, :]


class TokenInjection(_Projected):
    name = "token"

    @property
    def prefix_tokens(self) -> int:
        return 0 if self.proj is None else 1

    def prefix_count(self, cond) -> int:
        if cond is None or (cond.present is not None and not bool(cond.present.any())):
            return 0
        return 1

    def prefix(self, cond):
        return cond.term[:, None, :] if self.prefix_count(cond) else None

    def attention_mask(self, cond, tokens):
        if cond is None or cond.present is None or bool(cond.present.all()) or not self.prefix_count(cond):
            return None
        # The absent chips' location token is hidden from every other token (it still attends to
        # the patches itself, so its softmax has a key; its output is dropped before the pixels).
        allowed = torch.ones(len(cond.present), 1, tokens, tokens, dtype=torch.bool, device=cond.term.device)
        allowed[:, 0, 1:, 0] = cond.present[:, None]
        return allowed


class FiLMInjection(_Projected):
    name = "film"

    def __init__(self, *, location_dim: int, embed_dim: int, depth: int, **kwargs) -> None:
        super().__init__(location_dim=location_dim, embed_dim=embed_dim, depth=depth, **kwargs)
        self.film = (
            nn.ModuleList(nn.Linear(embed_dim, 2 * embed_dim) for _ in range(depth))
            if location_dim > 0
            else None
        )

    def init_weights(self) -> None:
        if self.film is not None:  # γ = β = 0: every block starts as the plain MAE's
            for layer in self.film:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def project(self, location):
        return F.silu(self.proj(location))

    def after_block(self, index, x, cond):
        if cond is None:
            return x
        gamma, beta = self.film[index](cond.term).chunk(2, dim=-1)
        if cond.present is not None:  # skip: γ = β = 0, the block's output as it is
            has = cond.present[:, None]
            gamma, beta = torch.where(has, gamma, 0.0), torch.where(has, beta, 0.0)
        return x * (1 + gamma[:, None, :]) + beta[:, None, :]


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


#: `injection=` name -> class; the order is the one error messages list.
INJECTIONS: dict[str, type[Injection]] = {
    cls.name: cls for cls in (AddInjection, TokenInjection, ClayV1Injection, FiLMInjection)
}
INJECTION_CHOICES = tuple(INJECTIONS)


def build_injection(name: str, **kwargs) -> Injection:
    """The injection called ``name``; a bad name fails here, listing the choices."""
    if name not in INJECTIONS:
        raise ValueError(f"injection={name!r} is not one of {list(INJECTION_CHOICES)}")
    return INJECTIONS[name](**kwargs)
