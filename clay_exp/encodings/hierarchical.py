"""`hierarchical`: learned vectors of the chip's chain of ancestor web-mercator tiles.

The proposal from the Clay team's discussion of spatial embeddings: a chip at zoom ``max_zoom``
(e.g. z15) is described by the concatenation of a learned vector for its own tile and for its
ancestors at coarser zooms (e.g. z10, z5, z0). An ancestor's vector is shared by all 4^(dz) of its
descendants, so semantics that are truly regional, continental or global are learned once, where they
are shared.

**Tables.** One per level (`TileTable`, in `clay_exp.encodings.tile_tables`). A level whose tile
count 4^z fits in ``max_rows`` is a dense table (row = y·2^z + x); a deeper level is a hashed table
of ``max_rows`` rows (row = hash(y·2^z + x) mod max_rows, a spatial hash as in multiresolution hash
encodings), so parameter memory stays flat at any zoom.
Distinct tiles collide: among N distinct tiles in use at a hashed level, the expected share that
shares its row with another is ``1 - (1 - 1/max_rows)^(N-1)`` (`expected_collision_rate`; ≈ N/max_rows
for N ≪ max_rows). Measured on uniformly sampled points this matches the formula (tests,
docs/hierarchical.md).

**Shared-semantics scaling.** Because a shared vector receives gradients from many tiles, the
proposal damps its update by how many tiles share it. ``share_scaling`` picks the factor of level z:

* ``none``: 1;
* ``count``: 4^-(max_zoom - z), the proposal's rule (z0 of a z15 chain: 4^-15);
* ``sqrt_count``: 2^-(max_zoom - z), gentler;
* ``batch_count``: per row and per batch, 1 / (number of chips in the batch that hit that row);
* ``observed``: per row, 1 / max(1, the mean number of chips per training batch that have reached
  it so far) — the proposal's "divide by how many share it" with the number that *do* share it per
  step, not the 4^dz that could: a z3 row of a z6 chain is divided by ~1.3 on the known-answer
  world, not by 64. Smooth where ``batch_count`` jumps with each batch's make-up; rows reached less
  than once a batch keep the base rate. The counts live in a buffer (saved in checkpoints);

each floored at ``share_floor`` (default 1e-6) so that z0 is not frozen at 4^-15.
``share_via`` says how the factor reaches the update:

* ``lr`` (default): static factors are per-level learning rates (one optimizer group per level with
  ``lr_scale``, built by the LightningModule from `param_groups`); exact under any optimizer.
  ``batch_count`` and ``observed`` cannot be a group's learning rate (they vary per row): the optimizer
  steps as usual, then a step hook divides each touched row's change by its count. The update of a
  row is then exactly 1/count of the unscaled one, under Adam too (Adam's moments see the full
  gradient). Rows no chip hit keep the optimizer's momentum-only update unchanged.
* ``grad``: a backward hook multiplies the gradient reaching each level's rows by the factor
  (``batch_count``: each chip's gradient by 1/count of its row, so a row's gradient is the mean over
  its chips instead of the sum). Exact for SGD. **Under Adam/AdamW it is (almost) a no-op**: Adam
  divides each element by the running RMS of its own gradient, so a constant factor cancels (up to
  ``eps``); with ``batch_count`` only the batch-to-batch variation of a row's count survives, as a
  relative weight between steps, not as a smaller update. A warning says so at run time.

``share_init`` (``none | count | sqrt_count``) scales each level's initial standard deviation by
the same (floored) factors. ``lr_scale`` multiplies every table's learning rate: under SGD a row
gets 1/batch of each chip's gradient and needs a larger rate than the backbone.

**Unseen places.** A row that no training chip reached is a random (or, with ``init_std=0``, zero)
vector the model never learned to read, and a chip at an unseen place gets one at its finest level.
``level_dropout`` (one probability per level, or one for all) zeroes a chip's vector at that level
for that share of training chips (as Clay v1 drops its whole location for 20 % of chips), so the
model learns what a missing level means; ``unseen_rows=zero`` then reads every row that no training
chip reached as that zero vector at evaluation (hit counts in a buffer), whatever its init.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from clay_exp.encodings.base import Knob, MercatorLatitudeClamp, SpatialEncoding
from clay_exp.encodings.tile_tables import TileTable, level_share_factor
from clay_exp.tiles import check_zoom, tile_chain

log = logging.getLogger(__name__)

COMBINE_CHOICES = ("concat", "sum")
SHARE_SCALING_CHOICES = ("none", "count", "sqrt_count", "batch_count", "observed")
SHARE_VIA_CHOICES = ("lr", "grad")
SHARE_INIT_CHOICES = ("none", "count", "sqrt_count")
UNSEEN_ROWS_CHOICES = ("keep", "zero")
#: Share-scaling rules whose factor is per row, applied to the update (lr) or gradient (grad) by hooks.
ROW_RULES = ("batch_count", "observed")


def _choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not one of {list(choices)}")
    return value


class HierarchicalTileEncoding(SpatialEncoding):
    """Concatenation (or sum) of per-level tile vectors for the chip's ancestor chain.

    Args:
        levels: increasing zoom levels whose tiles contribute a vector (default 0, 5, 10, 15).
        max_zoom: the chip's own zoom; every level must be <= max_zoom (default: the last level).
        dim_per_level: vector size per level, an int for all levels or one int per level.
        combine: ``concat`` (the proposal) or ``sum`` (all levels need the same dim).
        max_rows: largest dense table; deeper levels are hashed into this many rows.
        init_std: standard deviation of the (truncated normal) initial rows; 0 starts every row at
            zero, so a tile that no training chip reached keeps a zero vector and (through the
            model's linear projection) adds nothing, instead of a random vector the model never
            learned to read — what a chip at an unseen place needs from its finest level.
        share_scaling: ``none``, ``count``, ``sqrt_count`` or ``batch_count`` (module docstring).
        share_floor: smallest factor any scaling may give, in (0, 1].
        share_via: ``lr`` (per-level learning rates / rescaled row updates) or ``grad`` (SGD only).
        share_init: ``none``, ``count`` or ``sqrt_count``: scales each level's ``init_std``.
        lr_scale: multiplies every table's learning rate (> 0; SGD needs a larger one, module docstring).
        level_dropout: share of training chips whose vector at a level is zeroed, one value for all
            levels or one per level, each in [0, 1).
        unseen_rows: ``keep`` or ``zero`` (evaluation reads rows no training chip reached as zeros).
    """

    #: A row learns only from the chips below its tile (one in hundreds of a batch at a fine
    #: level): the tables' rate is the knob (x64 under AdamW on the known-answer world). Which
    #: levels is part of a study's question, never tuned by default.
    search_space: ClassVar[Mapping[str, Knob]] = {"lr_scale": Knob(1.0, 1024.0)}

    def __init__(
        self,
        levels: Sequence[int] = (0, 5, 10, 15),
        max_zoom: int | None = None,
        dim_per_level: int | Sequence[int] = 16,
        combine: str = "concat",
        max_rows: int = 2**16,
        init_std: float = 0.02,
        share_scaling: str = "none",
        share_floor: float = 1e-6,
        share_via: str = "lr",
        share_init: str = "none",
        lr_scale: float = 1.0,
        level_dropout: float | Sequence[float] = 0.0,
        unseen_rows: str = "keep",
    ) -> None:
        super().__init__(lr_scale)
        levels = [check_zoom(z) for z in levels]
        if not levels:
            raise ValueError("levels must name at least one zoom level, got []")
        if any(b <= a for a, b in itertools.pairwise(levels)):
            raise ValueError(f"levels={levels} must be strictly increasing zoom levels")
        max_zoom = levels[-1] if max_zoom is None else check_zoom(max_zoom)
        if levels[-1] > max_zoom:
            raise ValueError(f"levels={levels} has a level above max_zoom={max_zoom}")
        _choice("combine", combine, COMBINE_CHOICES)
        if int(max_rows) != max_rows or int(max_rows) < 1:
            raise ValueError(f"max_rows={max_rows!r} must be an integer >= 1")
        dims = (
            [int(dim_per_level)] * len(levels)
            if isinstance(dim_per_level, int)
            else [int(d) for d in dim_per_level]
        )
        if len(dims) != len(levels) or min(dims) < 1:
            raise ValueError(
                f"dim_per_level={dim_per_level!r} must be a positive int or one per level ({levels})"
            )
        if combine == "sum" and len(set(dims)) != 1:
            raise ValueError(f"combine='sum' needs the same dim for every level, got dim_per_level={dims}")
        _choice("share_scaling", share_scaling, SHARE_SCALING_CHOICES)
        _choice("share_via", share_via, SHARE_VIA_CHOICES)
        _choice("share_init", share_init, SHARE_INIT_CHOICES)
        if not 0.0 < share_floor <= 1.0:
            raise ValueError(f"share_floor={share_floor!r} must be in (0, 1]")
        if not init_std >= 0:
            raise ValueError(f"init_std={init_std!r} must be >= 0 (0: rows start at zero)")
        dropout = (
            [float(level_dropout)] * len(levels)
            if isinstance(level_dropout, (int, float))
            else [float(p) for p in level_dropout]
        )
        if len(dropout) != len(levels) or not all(0.0 <= p < 1.0 for p in dropout):
            raise ValueError(
                f"level_dropout={level_dropout!r} must be a probability in [0, 1) or one per level ({levels})"
            )
        _choice("unseen_rows", unseen_rows, UNSEEN_ROWS_CHOICES)

        self.levels = levels
        self.max_zoom = max_zoom
        self.dims = dims
        self.combine = combine
        self.max_rows = int(max_rows)
        self.share_scaling, self.share_via, self.share_init = share_scaling, share_via, share_init
        self.share_floor = float(share_floor)
        self.level_dropout = dropout
        self.unseen_rows = unseen_rows
        #: Whether tables count the training chips reaching each row (observed, unseen_rows=zero).
        self.tracks_hits = share_scaling == "observed" or unseen_rows == "zero"
        #: The static factor of each level under `share_scaling` (1 for none and the ROW_RULES).
        self.share_factors = [level_share_factor(share_scaling, z, max_zoom, share_floor) for z in levels]
        init_stds = [init_std * level_share_factor(share_init, z, max_zoom, share_floor) for z in levels]
        self.tables = nn.ModuleList(
            TileTable(z, d, self.max_rows, std, self.tracks_hits)
            for z, d, std in zip(levels, dims, init_stds, strict=True)
        )
        # Training batches seen, the denominator of `observed`'s chips per batch (a buffer: resumes).
        self.train_batches: Tensor | None
        self.register_buffer("train_batches", torch.zeros((), dtype=torch.long) if self.tracks_hits else None)
        self.out_dim = sum(dims) if combine == "concat" else dims[0]
        self._clamp = MercatorLatitudeClamp(type(self).__name__)
        # Optimizer step hooks (attach_optimizer) and what they need: per level, the (rows, values
        # before the step) of every lookup since the last step; then the last step's (rows, before, after).
        self._step_hooks: list[RemovableHandle] = []
        self._pending: list[list[tuple[Tensor, Tensor]]] = [[] for _ in levels]
        self._last_step: list[tuple[Tensor, Tensor, Tensor] | None] = [None for _ in levels]

    @property
    def rescales_row_updates(self) -> bool:
        """Whether a step hook divides each touched row's update by its per-row factor (batch_count or
        observed, via lr)."""
        return self.share_scaling in ROW_RULES and self.share_via == "lr"

    # -- the forward ----------------------------------------------------------------------------
    def tile_indices(self, lat: Tensor, lon: Tensor) -> dict[int, tuple[Tensor, Tensor]]:
        """(x, y) per level of each chip's ancestor chain, from its tile at max_zoom."""
        chain = tile_chain(lon, self._clamp(lat), [*self.levels, self.max_zoom])
        return {z: chain[z] for z in self.levels}

    def level_vectors(self, lat: Tensor, lon: Tensor) -> list[Tensor]:
        chain = self.tile_indices(lat, lon)
        training = self.training and torch.is_grad_enabled()
        if training and self.rescales_row_updates and not self._step_hooks:
            raise RuntimeError(
                f"HierarchicalTileEncoding(share_scaling={self.share_scaling!r}, share_via='lr') rescales "
                "each row's update after the optimizer step: call encoding.attach_optimizer(optimizer) "
                "first (MAELightningModule.configure_optimizers does)"
            )
        if training and self.train_batches is not None:
            self.train_batches += 1
        vectors = []
        for k, table in enumerate(self.tables):
            rows = table.rows(*chain[table.zoom])
            looked_up = table.embedding(rows)
            vector, keep = looked_up, None
            if training and self.level_dropout[k] > 0:
                keep = torch.rand(len(rows), device=rows.device) >= self.level_dropout[k]
                vector = looked_up * keep[:, None].to(looked_up.dtype)
            if training and table.hits is not None:
                reached = (
                    torch.ones_like(rows, dtype=table.hits.dtype)
                    if keep is None
                    else keep.to(table.hits.dtype)
                )
                table.hits.index_add_(0, rows, reached)
            elif not training and self.unseen_rows == "zero":
                vector = vector * (table.hits[rows] > 0)[:, None].to(vector.dtype)
            if training and self._step_hooks:
                self._pending[k].append((rows, looked_up.detach()))  # the rows' values, not dropped zeros
            if vector.requires_grad and self.share_via == "grad":
                self._scale_gradient(vector, table, rows, self.share_factors[k])
            vectors.append(vector)
        return vectors

    def _scale_gradient(self, vector: Tensor, table: TileTable, rows: Tensor, factor: float) -> None:
        """share_via='grad': multiply the gradient reaching the looked-up rows by the level's factor."""
        if self.share_scaling in ROW_RULES:
            scale = self._row_factor(table, rows, vector.dtype)[:, None]
            vector.register_hook(lambda grad: grad * scale)
        elif factor != 1.0:
            vector.register_hook(lambda grad: grad * factor)

    def _row_factor(self, table: TileTable, rows: Tensor, dtype: torch.dtype) -> Tensor:
        """The per-row factor of each entry of `rows` under a ROW_RULES scaling, floored at share_floor.

        batch_count: 1 / (entries of `rows` naming the same row); observed: 1 / max(1, the row's
        training chips so far / training batches so far).
        """
        if self.share_scaling == "observed":
            per_batch = table.hits[rows].double() / self.train_batches.clamp_min(1)
            factor = per_batch.clamp_min(1.0).reciprocal().to(dtype)
        else:
            factor = table.row_counts(rows, dtype).reciprocal()
        return factor.clamp_min(self.share_floor)

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        vectors = self.level_vectors(lat, lon)
        if self.combine == "concat":
            return torch.cat(vectors, dim=-1)
        return torch.stack(vectors, dim=0).sum(dim=0)

    # -- optimisation ---------------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """One group per level, ``encoding/zNN``; with share_via='lr', ``lr_scale`` = the level's factor.

        The groups ask for the optimizer's fused kernel (a per-group setting of torch's Adam, AdamW,
        SGD and Adagrad; other optimizers ignore it): the tables hold millions of entries, and torch's
        default for-loop AdamW over them costs ~8 % of a mae_tiny step on a CPU, the fused one ~2 %.
        Per group, not for the whole optimizer, because Lightning refuses gradient clipping under
        mixed precision for an optimizer that is fused as a whole.
        """
        return [
            {
                "name": f"encoding/z{table.zoom:02d}",
                "params": [table.embedding.weight],
                "weight_decay": 0.0,  # decay would shrink every row at every step, used or not
                "lr_scale": self.lr_scale * (factor if self.share_via == "lr" else 1.0),
                "fused": True,
            }
            for table, factor in zip(self.tables, self.share_factors, strict=True)
            if table.embedding.weight.requires_grad
        ]

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Hook the optimizer's steps: rescale row updates (batch_count via lr) and record diagnostics."""
        for handle in self._step_hooks:
            handle.remove()
        self._pending = [[] for _ in self.tables]
        self._last_step = [None for _ in self.tables]
        if (self.rescales_row_updates or self.tracks_hits) and _world_size() > 1:
            raise ValueError(
                f"share_scaling={self.share_scaling!r} (share_via={self.share_via!r}) with "
                f"unseen_rows={self.unseen_rows!r} counts chips per process, and processes would treat "
                f"the same rows differently under data-parallel training (world size {_world_size()}); "
                "use a single device, or share_scaling in none/count/sqrt_count (batch_count with "
                "share_via='grad') and unseen_rows='keep'"
            )
        scales_grad = self.share_via == "grad" and self.share_scaling != "none"
        if scales_grad and not isinstance(optimizer, torch.optim.SGD):
            log.warning(
                "share_via='grad' with %s: adaptive optimizers divide each gradient by its running "
                "magnitude, so share_scaling=%r barely changes the update; use share_via='lr' "
                "(share_via='grad' is meant for SGD).",
                type(optimizer).__name__,
                self.share_scaling,
            )
        self._step_hooks = [optimizer.register_step_post_hook(self._after_optimizer_step)]

    @torch.no_grad()
    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        pending, self._pending = self._pending, [[] for _ in self.tables]
        for k, (table, lookups) in enumerate(zip(self.tables, pending, strict=True)):
            if not lookups:
                continue
            rows = torch.cat([r for r, _ in lookups])
            before = torch.cat([b for _, b in lookups])  # values at lookup time = before this step
            weight = table.embedding.weight
            after = weight[rows]
            if self.rescales_row_updates:
                factor = self._row_factor(table, rows, after.dtype)[:, None]
                after = before + (after - before) * factor
                weight[rows] = after  # duplicate rows write identical values
            self._last_step[k] = (rows, before, after)

    # -- facts ------------------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, float]:
        """Per level, over the distinct rows the last optimizer step touched: mean row norm (after the
        step) and mean update norm, as ``zNN/row_norm`` and ``zNN/update_norm``."""
        stats: dict[str, float] = {}
        for table, last in zip(self.tables, self._last_step, strict=True):
            if last is None:
                continue
            rows, before, after = last
            unique, inverse = torch.unique(rows, return_inverse=True)
            first = torch.empty_like(unique).scatter_(0, inverse, torch.arange(len(rows), device=rows.device))
            after, before = after[first], before[first]
            stats[f"z{table.zoom:02d}/row_norm"] = float(after.norm(dim=1).mean())
            stats[f"z{table.zoom:02d}/update_norm"] = float((after - before).norm(dim=1).mean())
        return stats

    def collision_rates(self, lat: Tensor, lon: Tensor) -> dict[int, float]:
        """Measured share of the distinct tiles of these points that share a row, per level (0 if dense)."""
        chain = self.tile_indices(lat, lon)
        return {t.zoom: t.collision_rate(*chain[t.zoom]) if t.hashed else 0.0 for t in self.tables}

    @staticmethod
    def expected_collision_rate(num_tiles: int, num_rows: int) -> float:
        """Share of `num_tiles` distinct tiles that share their row with another, under a uniform hash."""
        if num_tiles <= 1:
            return 0.0
        return 1.0 - math.pow(1.0 - 1.0 / num_rows, num_tiles - 1)

    def extra_repr(self) -> str:
        return (
            f"levels={self.levels}, max_zoom={self.max_zoom}, combine={self.combine}, "
            f"out_dim={self.out_dim}, share_scaling={self.share_scaling}, share_via={self.share_via}, "
            f"share_init={self.share_init}, lr_scale={self.lr_scale}, level_dropout={self.level_dropout}, "
            f"unseen_rows={self.unseen_rows}"
        )


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
