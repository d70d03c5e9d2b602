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
    what Clay v1 does (module `clay_v1`, beside how its released code does it): the 2-D sin/cos
    positions at width ``embed_dim - 8`` and ``[time (4), location (4)]`` in the last 8 dims, the
    whole added to the patch embeddings before masking, and the same 8 values in the last 8 dims
    of the decoder's positions.
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

The pieces: `base` (`Injection`, the shared choices), `projected` (``add``, ``token``, ``film``),
`clay_v1` (``clay_v1``, with how Clay v1's released code does it). This module names them
(`INJECTIONS`) and builds one by name (`build_injection`).
"""

from __future__ import annotations

from clay_exp.models.injection.base import (
    CLAY_V1_LOCATION_DIMS,
    LOCATION_PROJECTION_CHOICES,
    MISSING_CHOICES,
    Injection,
    sincos_positions,
)
from clay_exp.models.injection.clay_v1 import ClayV1Injection
from clay_exp.models.injection.projected import (
    AddInjection,
    Condition,
    FiLMInjection,
    ProjectedInjection,
    TokenInjection,
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


__all__ = [
    "CLAY_V1_LOCATION_DIMS",
    "INJECTIONS",
    "INJECTION_CHOICES",
    "LOCATION_PROJECTION_CHOICES",
    "MISSING_CHOICES",
    "AddInjection",
    "ClayV1Injection",
    "Condition",
    "FiLMInjection",
    "Injection",
    "ProjectedInjection",
    "TokenInjection",
    "build_injection",
    "sincos_positions",
]
