"""A small ViT masked autoencoder (He et al., 2022) that accepts one location vector per chip.

Standard MAE: patch embedding of a C-band chip, fixed 2-D sin/cos patch positions, random masking
(default 75 %), a Transformer encoder on the visible patches, a light decoder on all positions, and
the loss = MSE on the masked patches of per-patch-normalised pixels (the paper's `norm_pix_loss`).

The location vector (``(B, location_dim)``, from a spatial encoding) enters through one of the
injections of `clay_exp.models.injection` (``injection=``): ``add`` (projected, added to every patch
token before masking), ``token`` (projected, one extra token), ``clay_v1`` (Clay v1's packing of
time and location into the last 8 dims of the patch positions) or ``film`` (zero-initialised
scale and shift of every encoder block's output). With ``location_dim == 0`` (the ``none``
encoding) no location parameters exist.

Inputs of `forward`: ``images`` ``(B, C, H, W)``; ``location`` ``(B, location_dim)`` or None;
``time`` (optional) ``(B, 4)`` float = ``[sin w, cos w, sin h, cos h]``, ``w = 2π · isoweek / 52``,
``h = 2π · hour / 24`` (Clay v1's time features, `clay_exp.data.time.clay_v1_time`), read by
``clay_v1`` only (zeros when absent); ``generator`` for the masks (and the location dropout);
``location_known`` (optional) ``(B,)`` bool: the chips whose location is known, the others take the
injection's ``missing`` path (`clay_exp.models.injection`, "A chip without a location").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from clay_exp.models.injection import INJECTION_CHOICES, build_injection
from clay_exp.models.patches import (
    check_mask_ratio,
    masking_from_noise,
    normalise_patches,
    patchify,
    unpatchify,
    visible_count,
)

__all__ = ["INJECTION_CHOICES", "MAEOutput", "MaskedAutoencoderViT"]


@dataclass
class MAEOutput:
    loss: Tensor  # scalar: mean over masked patches of the per-patch MSE
    pred: Tensor  # (B, L, patch_size**2 * C) predicted (normalised) pixels for every patch
    mask: Tensor  # (B, L) 1 = masked (to reconstruct), 0 = visible


class MaskedAutoencoderViT(nn.Module):
    def __init__(
        self,
        img_size: int = 32,
        patch_size: int = 4,
        in_chans: int = 4,
        embed_dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        decoder_embed_dim: int = 64,
        decoder_depth: int = 2,
        decoder_num_heads: int = 4,
        mlp_ratio: float = 4.0,
        mask_ratio: float = 0.75,
        norm_pix_loss: bool = True,
        location_dim: int = 0,
        injection: str = "add",
        location_dropout: float | None = None,
        missing: str = "zero",
        location_projection: str = "auto",
        location_is_clay_latlon: bool = False,
    ) -> None:
        """``location_dropout`` (None: the injection's own default, 0.2 for ``clay_v1``, else 0) and
        ``missing`` (``zero``/``token``/``skip``) say when a chip's location is missing and what it
        gets; ``location_projection`` is read by ``injection=clay_v1`` only (see
        `clay_exp.models.injection`); ``location_is_clay_latlon`` is set by the LightningModule from
        the encoding (true when its vector is Clay v1's ``[sin φ, cos φ, sin λ, cos λ]``)."""
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}")
        check_mask_ratio((img_size // patch_size) ** 2, mask_ratio)
        self.img_size, self.patch_size, self.in_chans = img_size, patch_size, in_chans
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.location_dim = location_dim

        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        grid = img_size // patch_size
        self.num_patches = grid * grid
        # Owns the fixed (not learned) sin/cos positions, as in MAE, and the location's way in.
        self.injection = build_injection(
            injection,
            location_dim=location_dim,
            embed_dim=embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            grid=grid,
            depth=depth,
            location_dropout=location_dropout,
            missing=missing,
            location_projection=location_projection,
            location_is_clay_latlon=location_is_clay_latlon,
        )

        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim)

        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True)
            for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size * patch_size * in_chans)
        self._init_weights()

    # -- set-up ---------------------------------------------------------------------------------
    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self.injection.init_weights()

    def location_parameters(self) -> list[nn.Parameter]:
        """Parameters that exist only to carry the location signal (counted with the encoding)."""
        return self.injection.location_parameters()

    # -- pieces ---------------------------------------------------------------------------------
    def check_images(self, images: Tensor) -> None:
        expected = (self.in_chans, self.img_size, self.img_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images must have shape (B, C, H, W) = (B, {expected[0]}, {expected[1]}, {expected[2]}) "
                f"for this model, got {tuple(images.shape)}; check data.bands / data.chip_size"
            )

    def patchify(self, images: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), patches in row-major order, pixels (p, p, C) within a patch."""
        return patchify(images, self.patch_size)

    def unpatchify(self, patches: Tensor) -> Tensor:
        """Inverse of `patchify`."""
        return unpatchify(patches, self.patch_size, self.in_chans, self.img_size // self.patch_size)

    def random_masking(
        self, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Keep a random subset of int(L * (1 - mask_ratio)) tokens per sample (MAE's argsort of noise)."""
        b, n, d = x.shape
        noise = torch.rand(b, n, device=x.device, generator=generator)
        ids_keep, mask, ids_restore = masking_from_noise(noise, visible_count(n, self.mask_ratio))
        x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        return x_kept, mask, ids_restore

    @contextmanager
    def masking(self, mask_ratio: float) -> Iterator[None]:
        """Mask `mask_ratio` of the patches inside the block (1.0: none visible, the decoder predicts
        every patch from the location and the mask tokens; 0.0: all visible, for embeddings)."""
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio={mask_ratio!r} must lie in [0, 1]")
        previous, self.mask_ratio = self.mask_ratio, float(mask_ratio)
        try:
            yield
        finally:
            self.mask_ratio = previous

    def check_location(self, location: Tensor | None, batch_size: int) -> None:
        if self.location_dim > 0 and (location is None or location.shape != (batch_size, self.location_dim)):
            got = None if location is None else tuple(location.shape)
            raise ValueError(f"location must have shape ({batch_size}, {self.location_dim}), got {got}")

    def condition(
        self,
        location: Tensor | None,
        batch_size: int,
        time: Tensor | None = None,
        generator: torch.Generator | None = None,
        location_known: Tensor | None = None,
    ):
        """The injection's per-forward condition (see `clay_exp.models.injection.Injection`)."""
        self.check_location(location, batch_size)
        if location_known is not None and tuple(location_known.shape) != (batch_size,):
            raise ValueError(
                f"location_known must be a ({batch_size},) bool tensor (one flag per chip), got shape "
                f"{tuple(location_known.shape)}"
            )
        if location is not None and self.location_dim > 0:
            location = location.float()
        return self.injection.condition(batch_size, location, time, generator, location_known)

    def position_encoding(
        self,
        location: Tensor | None,
        batch_size: int,
        time: Tensor | None = None,
        generator: torch.Generator | None = None,
        location_known: Tensor | None = None,
    ) -> Tensor:
        """What is added to the patch embeddings before masking: ``(1 or B, L, embed_dim)``."""
        cond = self.condition(location, batch_size, time, generator, location_known)
        return self.injection.encoder_positions(cond)

    def forward_encoder(
        self,
        images: Tensor,
        location: Tensor | None,
        generator: torch.Generator | None = None,
        time: Tensor | None = None,
        location_known: Tensor | None = None,
    ):
        """-> (latent, mask, ids_restore, cond): ``cond`` is the injection's condition, for the decoder;
        ``latent`` starts with the injection's `prefix_count(cond)` prefix tokens."""
        cond = self.condition(location, images.shape[0], time, generator, location_known)
        x = self.patch_embed(images) + self.injection.encoder_positions(cond)
        x, mask, ids_restore = self.random_masking(x, generator)
        prefix = self.injection.prefix(cond)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        attn_mask = self.injection.attention_mask(cond, x.shape[1])
        for i, blk in enumerate(self.blocks):
            x = self.injection.after_block(i, blk(x, attn_mask=attn_mask), cond)
        return self.norm(x), mask, ids_restore, cond

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor, cond=None) -> Tensor:
        x = self.decoder_embed(latent)
        extra = self.injection.prefix_count(cond)
        b, n_vis, d = x.shape[0], x.shape[1] - extra, x.shape[2]
        n = ids_restore.shape[1]
        patches = torch.cat([x[:, extra:], self.mask_token.expand(b, n - n_vis, d)], dim=1)
        patches = torch.gather(
            patches, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d)
        ) + self.injection.decoder_positions(cond)
        x = torch.cat([x[:, :extra], patches], dim=1)
        attn_mask = self.injection.attention_mask(cond, x.shape[1])
        for blk in self.decoder_blocks:
            x = blk(x, attn_mask=attn_mask)
        return self.decoder_pred(self.decoder_norm(x))[:, extra:]

    def reconstruction_loss(self, images: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        target = self.patchify(images)
        if self.norm_pix_loss:
            target = normalise_patches(target)
        per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)
        return (per_patch * mask).sum() / mask.sum()

    def forward(
        self,
        images: Tensor,
        location: Tensor | None = None,
        generator: torch.Generator | None = None,
        time: Tensor | None = None,
        location_known: Tensor | None = None,
    ) -> MAEOutput:
        self.check_images(images)
        latent, mask, ids_restore, cond = self.forward_encoder(
            images, location, generator, time, location_known
        )
        pred = self.forward_decoder(latent, ids_restore, cond)
        return MAEOutput(self.reconstruction_loss(images, pred, mask), pred, mask)
