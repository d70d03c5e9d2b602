"""k MAEs of one architecture (one per seed) evaluated as one model: their weights stacked along a
leading seed dimension, every matrix product one batched product (``baddbmm``), attention over the
k·B sequences in one call.

Why: `mae_tiny`'s matrices (width 64) are too small to feed a CPU core; k seeds make them k times
taller (docs/benchmarks.md, "Several seeds in one process": ~1.3x less CPU per seed-step at k = 4-8).
The weights are stacked from each seed's own `MaskedAutoencoderViT` at every call (``torch.stack`` is
differentiable), so every seed keeps ordinary parameters, its own optimizer and checkpoints.

What stays per seed, as `MaskedAutoencoderViT.forward` does it: the injection's condition and
positions (`Injection.condition`, `encoder_positions`, `decoder_positions`: the location projection
and any location dropout draw), and the masking noise, which the caller draws from each seed's own
random stream. Each seed's loss equals its model's own forward on the same noise up to float rounding
(a batched product sums in another order); ``tests/test_seed_group.py`` pins it.

Only the backbone of `clay_exp.models.mae` with an injection whose only hooks are the positions
(``add``, or none) can be stacked: `check_stackable` says what else it found.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed
from torch import Tensor, nn

from clay_exp.models.injection.base import Injection
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.models.patches import masking_from_noise, normalise_patches, visible_count

#: Injection hooks that must be the base class's (no prefix token, no attention mask, nothing after a
#: block): the injection then acts through the positions only, which stay per seed.
PLAIN_HOOKS = ("prefix", "prefix_count", "attention_mask", "after_block")


def check_stackable(models: Sequence[MaskedAutoencoderViT]) -> None:
    """Raise ValueError unless every model can be evaluated by `stacked_losses`."""
    if not models:
        raise ValueError("no models to stack")
    first = models[0]
    for model in models:
        if not isinstance(model, MaskedAutoencoderViT):
            raise ValueError(f"only MaskedAutoencoderViT can be stacked, got {type(model).__name__}")
        hooks = [h for h in PLAIN_HOOKS if getattr(type(model.injection), h) is not getattr(Injection, h)]
        if hooks:
            raise ValueError(
                f"injection={model.injection.name!r} changes {hooks} of the MAE: seeds can be trained "
                "together only with injection=add (the location enters through the positions)"
            )
        shapes = {n: p.shape for n, p in model.named_parameters()}
        if shapes != {n: p.shape for n, p in first.named_parameters()}:
            raise ValueError("the models to stack differ in their parameters (not one architecture)")
        if model.norm_pix_loss != first.norm_pix_loss or model.mask_ratio != first.mask_ratio:
            raise ValueError("the models to stack differ in mask_ratio or norm_pix_loss")
    if not isinstance(first.patch_embed, PatchEmbed) or not isinstance(first.patch_embed.norm, nn.Identity):
        raise ValueError("the patch embedding must be timm's PatchEmbed without a norm")
    for block in [*first.blocks, *first.decoder_blocks]:
        attn, mlp = block.attn, block.mlp
        plain = [block.ls1, block.ls2, block.drop_path1, block.drop_path2, attn.q_norm, attn.k_norm,
                 attn.norm, mlp.norm, mlp.drop1, mlp.drop2]  # fmt: skip
        if not all(isinstance(m, nn.Identity | nn.Dropout) for m in plain) or any(
            isinstance(m, nn.Dropout) and m.p > 0 for m in plain
        ):
            raise ValueError(
                "a Transformer block has layer scale, drop path, q/k norms or dropout: not stackable"
            )
        if not isinstance(block.mlp.act, nn.GELU) or block.mlp.act.approximate != "none":
            raise ValueError("the MLP's activation must be the exact GELU")


def _linear(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """x (k, ..., in) @ w (k, out, in)^T + b (k, out): one batched matrix product for all seeds."""
    k, inner = x.shape[0], x.shape[-1]
    flat = x.reshape(k, -1, inner)
    wt = w.transpose(1, 2)
    y = torch.bmm(flat, wt) if b is None else torch.baddbmm(b.unsqueeze(1), flat, wt)
    return y.view(*x.shape[:-1], w.shape[1])


def _layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float) -> Tensor:
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(b.view(shape), F.layer_norm(x, x.shape[-1:], eps=eps), w.view(shape))


def _block(x: Tensor, w: dict[str, Tensor], name: str, block: nn.Module) -> Tensor:
    """timm's `Block` (pre-norm attention + MLP, both residual) for stacked weights; x (k, B, N, C)."""
    k, b, n, c = x.shape
    heads = block.attn.num_heads
    h = _layer_norm(x, w[f"{name}.norm1.weight"], w[f"{name}.norm1.bias"], block.norm1.eps)
    qkv = _linear(h, w[f"{name}.attn.qkv.weight"], w.get(f"{name}.attn.qkv.bias"))
    q, kk, v = qkv.view(k * b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    a = F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).reshape(k, b, n, c)
    x = x + _linear(a, w[f"{name}.attn.proj.weight"], w.get(f"{name}.attn.proj.bias"))
    h = _layer_norm(x, w[f"{name}.norm2.weight"], w[f"{name}.norm2.bias"], block.norm2.eps)
    h = F.gelu(_linear(h, w[f"{name}.mlp.fc1.weight"], w.get(f"{name}.mlp.fc1.bias")))
    return x + _linear(h, w[f"{name}.mlp.fc2.weight"], w.get(f"{name}.mlp.fc2.bias"))


def backbone_parameters(model: MaskedAutoencoderViT) -> dict[str, Tensor]:
    """A model's parameters that `stacked_losses` stacks: all but the injection's (per seed)."""
    return {n: p for n, p in model.named_parameters() if not n.startswith("injection.")}


def stacked_weights(parameters: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Each backbone parameter of the k models (`backbone_parameters`) stacked along a new dim 0."""
    return {name: torch.stack([p[name] for p in parameters]) for name in parameters[0]}


def stacked_losses(
    models: Sequence[MaskedAutoencoderViT],
    images: Sequence[Tensor],
    conds: Sequence[object],
    noises: Sequence[Tensor],
    parameters: Sequence[dict[str, Tensor]] | None = None,
) -> Tensor:
    """Each model's masked-reconstruction loss, ``(k,)``: model ``i`` on ``images[i]`` ``(B, C, H, W)``
    with its injection's condition ``conds[i]`` (`MaskedAutoencoderViT.condition`) and its masking
    noise ``noises[i]`` ``(B, L)``, as ``models[i].forward`` computes it with that noise.
    `parameters`: each model's `backbone_parameters`, if the caller keeps them (walking a model's
    modules for them costs ~1 ms a call)."""
    first = models[0]
    k = len(models)
    for model, image in zip(models, images, strict=True):
        model.check_images(image)
    w = stacked_weights(parameters or [backbone_parameters(m) for m in models])
    x = torch.stack(list(images))  # (k, B, C, H, W)
    _, b, c, hh, ww = x.shape
    p = first.patch_size
    g = hh // p
    # the patch embedding's stride-p convolution = a linear map of each patch's (c, p, p) pixels
    patches = x.reshape(k, b, c, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(k, b, g * g, c * p * p)
    proj = w["patch_embed.proj.weight"]
    tokens = _linear(patches, proj.reshape(k, proj.shape[1], -1), w.get("patch_embed.proj.bias"))
    positions = torch.stack(
        [m.injection.encoder_positions(cond).expand(b, -1, -1) for m, cond in zip(models, conds, strict=True)]
    )
    tokens = tokens + positions
    n, d = tokens.shape[2], tokens.shape[3]
    keep = visible_count(n, first.mask_ratio)
    masking = [masking_from_noise(noise, keep) for noise in noises]
    ids_keep = torch.stack([m[0] for m in masking])
    mask = torch.stack([m[1] for m in masking])
    ids_restore = torch.stack([m[2] for m in masking])
    h = torch.gather(tokens, 2, ids_keep.unsqueeze(-1).expand(-1, -1, -1, d))
    for i, block in enumerate(first.blocks):
        h = _block(h, w, f"blocks.{i}", block)
    h = _layer_norm(h, w["norm.weight"], w["norm.bias"], first.norm.eps)
    h = _linear(h, w["decoder_embed.weight"], w.get("decoder_embed.bias"))
    dd = h.shape[-1]
    mask_tokens = w["mask_token"].view(k, 1, 1, dd).expand(k, b, n - keep, dd)
    h = torch.gather(torch.cat([h, mask_tokens], dim=2), 2, ids_restore.unsqueeze(-1).expand(-1, -1, -1, dd))
    h = h + torch.stack(
        [m.injection.decoder_positions(cond).expand(b, -1, -1) for m, cond in zip(models, conds, strict=True)]
    )
    for i, block in enumerate(first.decoder_blocks):
        h = _block(h, w, f"decoder_blocks.{i}", block)
    h = _layer_norm(h, w["decoder_norm.weight"], w["decoder_norm.bias"], first.decoder_norm.eps)
    pred = _linear(h, w["decoder_pred.weight"], w.get("decoder_pred.bias"))
    target = first.patchify(x.reshape(k * b, c, hh, ww)).view(k, b, n, -1)
    if first.norm_pix_loss:
        target = normalise_patches(target)
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    mask = mask.to(per_patch.dtype)
    return (per_patch * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
