"""The injections that project the location vector to the model width, ``Linear(location_dim,
embed_dim)`` (nothing without one): ``add`` (added to every patch token), ``token`` (one extra
token) and ``film`` (a zero-initialised scale and shift of every encoder block's output); the
package docstring says what each does and what a chip without a location gets."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clay_exp.models.injection.base import Injection


class Condition(NamedTuple):
    """The per-chip location term of ``add``/``token``/``film`` for one forward pass."""

    term: Tensor  # (B, embed_dim): the projected vector (film: the hidden h)
    #: (B,) bool with ``missing=skip``: the chips that have a term (the others get none); else None
    present: Tensor | None = None


class ProjectedInjection(Injection):
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


class AddInjection(ProjectedInjection):
    name = "add"

    def encoder_positions(self, cond):
        if cond is None:
            return self.pos_embed
        term = cond.term if cond.present is None else torch.where(cond.present[:, None], cond.term, 0.0)
        return self.pos_embed + term[:, None, :]


class TokenInjection(ProjectedInjection):
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


class FiLMInjection(ProjectedInjection):
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
