"""Several seeds of one arm trained together as one batched model, against the same seeds trained
one after the other: is it worth training k seeds in one process (issue 22, "feed the CPU")?

    python scripts/benchmark_seeds.py                        # k = 1, 2, 4, 8 on 1 and 2 threads
    python scripts/benchmark_seeds.py --seeds 2 3 4 5 6 7 8 --threads 1 --rounds 5
    python scripts/benchmark_seeds.py experiment=study_known_answer arm=none

For each k, k modules of the run's config (seeds 0..k-1: their own weights, encodings and data
order; ``--speed``, `default` unless told) take one training step each: forward, backward, gradient
clipping at the trainer's value, AdamW, on their own batch.

* ``separate``: the k steps one after the other, as k runs (one per process) would take them;
* ``batched``: one step of all k at once: the backbones' weights stacked along a leading seed
  dimension, every matrix product a batched one (``baddbmm``), attention over the k·B sequences
  in one call, each seed's encoding evaluated on its own batch (tables cannot be stacked: they
  are rows of different tiles), one optimizer over the stacked weights, clipping per seed;
* ``vmap``: the generic way, ``torch.func.vmap`` over ``functional_call`` of the stacked backbones
  (torch 2.14 has no batching rule for CPU flash attention: it falls back to a loop over seeds);
* ``batch xk``: one model on a batch k times larger, per 64 chips: the bound any seed-batching
  approaches (the same tensor sizes, one set of weights).

The batched step computes each seed's loss to within float tolerance of its own step (checked and
printed: ``max |loss diff|``). Times are per seed-step (the k steps' time over k), best of the
interleaved rounds on process CPU time (all threads; wall times are in the JSON too); ``x
separate`` > 1 means the batched way is faster.
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import time
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from clay_exp.benchmarking import fmt, machine, make_optimizer, markdown_table, torch_threads, write_json
from clay_exp.config import compose_config
from clay_exp.models.mae import MaskedAutoencoderViT
from clay_exp.optim import build_optimizer
from clay_exp.train import build_module

DEFAULT_OVERRIDES = ["experiment=study_known_answer", "arm=hierarchical"]
CLIP = 1.0  # configs/trainer/default.yaml: gradient_clip_val


# -- the seed-batched MAE (injection=add), weights stacked along dim 0 --------------------------------
def _linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """x (k, ..., in) @ w (k, out, in)^T + b (k, out), one batched matmul."""
    k, inner = x.shape[0], x.shape[-1]
    y = torch.baddbmm(b.unsqueeze(1), x.reshape(k, -1, inner), w.transpose(1, 2))
    return y.view(*x.shape[:-1], w.shape[1])


def _layer_norm(x: Tensor, w: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    shape = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return torch.addcmul(b.view(shape), F.layer_norm(x, x.shape[-1:], eps=eps), w.view(shape))


def _block(x: Tensor, p: dict[str, Tensor], name: str, heads: int, eps: float) -> Tensor:
    k, b, n, c = x.shape
    h = _layer_norm(x, p[f"{name}.norm1.weight"], p[f"{name}.norm1.bias"], eps)
    qkv = _linear(h, p[f"{name}.attn.qkv.weight"], p[f"{name}.attn.qkv.bias"])
    q, kk, v = qkv.view(k * b, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
    a = F.scaled_dot_product_attention(q, kk, v).transpose(1, 2).reshape(k, b, n, c)
    x = x + _linear(a, p[f"{name}.attn.proj.weight"], p[f"{name}.attn.proj.bias"])
    h = _layer_norm(x, p[f"{name}.norm2.weight"], p[f"{name}.norm2.bias"], eps)
    h = _linear(F.gelu(_linear(h, p[f"{name}.mlp.fc1.weight"], p[f"{name}.mlp.fc1.bias"])), *_fc2(p, name))
    return x + h


def _fc2(p: dict[str, Tensor], name: str) -> tuple[Tensor, Tensor]:
    return p[f"{name}.mlp.fc2.weight"], p[f"{name}.mlp.fc2.bias"]


def batched_losses(
    mae: MaskedAutoencoderViT, p: dict[str, Tensor], images: Tensor, location: Tensor | None, noise: Tensor
) -> Tensor:
    """Each seed's MAE loss (k,), for images (k, B, C, H, W), location (k, B, dim), noise (k, B, L)."""
    k, b, c, hh, ww = images.shape
    ps = mae.patch_size
    g = hh // ps
    # the patch embedding's stride-p convolution = a linear map of each patch's (c, p, p) pixels
    patches = images.reshape(k, b, c, g, ps, g, ps).permute(0, 1, 3, 5, 2, 4, 6).reshape(k, b, g * g, -1)
    w = p["patch_embed.proj.weight"]
    x = _linear(patches, w.reshape(k, w.shape[1], -1), p["patch_embed.proj.bias"])
    pos = mae.injection.pos_embed
    if location is not None:
        cond = _linear(location, p["injection.proj.weight"], p["injection.proj.bias"])
        x = x + (pos + cond[:, :, None, :])
    else:
        x = x + pos
    n, d = x.shape[2], x.shape[3]
    keep = int(n * (1 - mae.mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=2)
    ids_restore = torch.argsort(ids_shuffle, dim=2)
    x = torch.gather(x, 2, ids_shuffle[..., :keep, None].expand(-1, -1, -1, d))
    mask = torch.ones(k, b, n)
    mask[..., :keep] = 0
    mask = torch.gather(mask, 2, ids_restore)
    eps = mae.norm.eps
    heads = mae.blocks[0].attn.num_heads
    for i in range(len(mae.blocks)):
        x = _block(x, p, f"blocks.{i}", heads, eps)
    x = _layer_norm(x, p["norm.weight"], p["norm.bias"], eps)
    x = _linear(x, p["decoder_embed.weight"], p["decoder_embed.bias"])
    dd = x.shape[-1]
    tokens = torch.cat([x, p["mask_token"].expand(k, b, n - keep, dd)], dim=2)
    x = torch.gather(tokens, 2, ids_restore[..., None].expand(-1, -1, -1, dd))
    x = x + mae.injection.decoder_pos_embed
    heads = mae.decoder_blocks[0].attn.num_heads
    for i in range(len(mae.decoder_blocks)):
        x = _block(x, p, f"decoder_blocks.{i}", heads, eps)
    x = _layer_norm(x, p["decoder_norm.weight"], p["decoder_norm.bias"], eps)
    pred = _linear(x, p["decoder_pred.weight"], p["decoder_pred.bias"])
    target = mae.patchify(images.reshape(k * b, c, hh, ww)).view(k, b, n, -1)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return (per_patch * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))


def _mae_with_noise(
    mae: MaskedAutoencoderViT, images: Tensor, location: Tensor | None, noise: Tensor
) -> Tensor:
    """The MAE's own forward with the masking noise given (what vmap needs: no generator inside)."""
    cond = mae.condition(location, images.shape[0])
    x = mae.patch_embed(images) + mae.injection.encoder_positions(cond)
    b, n, d = x.shape
    keep = int(n * (1 - mae.mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x = torch.gather(x, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
    mask = torch.cat([torch.zeros(b, keep), torch.ones(b, n - keep)], dim=1)
    mask = torch.gather(mask, 1, ids_restore)
    for i, blk in enumerate(mae.blocks):
        x = mae.injection.after_block(i, blk(x), cond)
    pred = mae.forward_decoder(mae.norm(x), ids_restore, cond)
    return mae.reconstruction_loss(images, pred, mask)


# -- the three ways to take k seed-steps ----------------------------------------------------------------
class Seeds:
    """k modules (seeds 0..k-1) of one config, each with its own batches, masks and optimizer."""

    def __init__(self, cfg: Any, k: int, steps: int) -> None:
        self.modules, self.batches = [], []
        for seed in range(k):
            torch.manual_seed(seed)
            self.modules.append(build_module(cfg).train())
            dm = instantiate(cfg.data, shuffle_seed=seed)
            dm.render_once(1024)
            dm.setup("fit")
            self.batches.append(list(itertools.islice(dm.train_dataloader(), steps)))
        g = torch.Generator().manual_seed(1)
        n = self.modules[0].model.num_patches
        b = self.batches[0][0]["image"].shape[0]
        self.noise = [torch.rand(k, b, n, generator=g) for _ in range(steps)]
        self.k = k

    # separate: one module after the other
    def separate_setup(self) -> list[tuple[Any, torch.optim.Optimizer]]:
        modules = [copy.deepcopy(m) for m in self.modules]
        return [(m, make_optimizer(m)) for m in modules]

    def separate_step(self, state: list, i: int) -> list[float]:
        losses = []
        for s, (m, opt) in enumerate(state):
            batch = self.batches[s][i % len(self.batches[s])]
            location = m.encoding(batch) if m.encoding.out_dim > 0 else None
            loss = _mae_with_noise(m.model, batch["image"], location, self.noise[i % len(self.noise)][s])
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        return losses

    # batched: stacked backbones, per-seed encodings
    def batched_setup(self) -> dict[str, Any]:
        modules = [copy.deepcopy(m) for m in self.modules]
        params, _ = stack_module_state([m.model for m in modules])
        params = {name: torch.nn.Parameter(v.detach().clone()) for name, v in params.items()}
        decay = [v for name, v in params.items() if v.dim() > 2 and "token" not in name]
        no_decay = [v for name, v in params.items() if not (v.dim() > 2 and "token" not in name)]
        kernel = {"fused": True} if modules[0].hparams.get("fused_optimizer") else {}  # as one seed's
        groups = [{"params": decay, **kernel}, {"params": no_decay, "weight_decay": 0.0, **kernel}]
        for m in modules:
            groups += m.encoding.param_groups()
        optimizer = build_optimizer(modules[0].optimizer_factory, groups)
        for m in modules:
            m.encoding.attach_optimizer(optimizer)
        return {"params": params, "modules": modules, "optimizer": optimizer, "mae": modules[0].model}

    def batched_step(self, state: dict[str, Any], i: int, functional: bool = False) -> list[float]:
        modules, params = state["modules"], state["params"]
        batches = [self.batches[s][i % len(self.batches[s])] for s in range(self.k)]
        images = torch.stack([b["image"] for b in batches])
        has_location = modules[0].encoding.out_dim > 0
        location = None
        if has_location:
            location = torch.stack([m.encoding(b) for m, b in zip(modules, batches, strict=True)])
        noise = self.noise[i % len(self.noise)]
        if functional:
            mae = state["mae"]

            def one(p: dict[str, Tensor], img: Tensor, loc: Tensor | None, nz: Tensor) -> Tensor:
                return functional_call(mae, p, (img, loc, nz), strict=False)

            with _ForwardAs(mae, _mae_with_noise):
                losses = vmap(one, randomness="error")(params, images, location, noise)
        else:
            losses = batched_losses(state["mae"], params, images, location, noise)
        losses.sum().backward()
        self._clip_per_seed(state)
        state["optimizer"].step()
        state["optimizer"].zero_grad(set_to_none=True)
        return [float(v) for v in losses.detach()]

    def _clip_per_seed(self, state: dict[str, Any]) -> None:
        """Each seed's gradient norm over its own weights (a slice of each stacked one and its encoding)."""
        stacked = [p.grad for p in state["params"].values() if p.grad is not None]
        norms = [torch.linalg.vector_norm(g, dim=tuple(range(1, g.dim()))) for g in stacked]
        per_seed = torch.stack(norms, 1)
        for s, m in enumerate(state["modules"]):
            own = [p.grad for p in m.encoding.parameters() if p.grad is not None]
            norms = per_seed[s]
            if own:
                norms = torch.cat([norms, torch.stack([torch.linalg.vector_norm(g) for g in own])])
            coef = (CLIP / (torch.linalg.vector_norm(norms) + 1e-6)).clamp(max=1.0)
            for g in stacked:
                g[s].mul_(coef)
            for g in own:
                g.mul_(coef)


class _ForwardAs:
    """Swap a module's forward for a function while vmap runs it (restored after)."""

    def __init__(self, module: torch.nn.Module, fn: Any) -> None:
        self.module, self.fn = module, fn

    def __enter__(self) -> None:
        self.module.forward = lambda *a: self.fn(self.module, *a)

    def __exit__(self, *exc: object) -> None:
        del self.module.forward


def bigger_batch_setup(cfg: Any, k: int) -> tuple[Any, torch.optim.Optimizer, dict[str, Tensor], Tensor]:
    torch.manual_seed(0)
    module = build_module(cfg).train()
    dm = instantiate(cfg.data, batch_size=cfg.data.batch_size * k)
    dm.render_once(1024)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    noise = torch.rand(batch["image"].shape[0], module.model.num_patches)
    return module, make_optimizer(module), batch, noise


def bigger_batch_step(state: tuple) -> None:
    module, optimizer, batch, noise = state
    location = module.encoding(batch) if module.encoding.out_dim > 0 else None
    _mae_with_noise(module.model, batch["image"], location, noise).backward()
    torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], CLIP)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def seconds(fn: Any, repeats: int) -> tuple[float, float]:
    """(CPU, wall) seconds per call of `fn`: CPU time (all threads) is robust to other jobs on the
    machine, wall time is what a run waits for; they agree on one idle thread."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(repeats):
        fn(i)
    return (time.process_time() - cpu) / repeats, (time.perf_counter() - wall) / repeats


def measure(cfg: Any, k: int, args: argparse.Namespace) -> dict[str, Any]:
    seeds = Seeds(cfg, k, args.steps)
    sep, bat, vm = seeds.separate_setup(), seeds.batched_setup(), seeds.batched_setup()
    # the same first step three ways: each seed's loss to float tolerance (then the states part ways)
    first = [seeds.separate_step(sep, 0), seeds.batched_step(bat, 0)]
    if args.vmap:
        first.append(seeds.batched_step(vm, 0, functional=True))
    diff = max(abs(a - b) for other in first[1:] for a, b in zip(first[0], other, strict=True))
    big = bigger_batch_setup(cfg, k)
    measures = {
        "separate": lambda i: seeds.separate_step(sep, i + 1),
        "batched": lambda i: seeds.batched_step(bat, i + 1),
        "batch xk": lambda i: bigger_batch_step(big),
    }
    if args.vmap:
        measures["vmap"] = lambda i: seeds.batched_step(vm, i + 1, functional=True)
    for fn in measures.values():  # warm-up
        fn(0)
    rounds: dict[str, list[float]] = {name: [] for name in measures}
    walls: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(args.rounds):
        for name, fn in measures.items():
            cpu, wall = seconds(fn, args.repeats)
            rounds[name].append(1e3 * cpu / k)
            walls[name].append(1e3 * wall / k)
    best = {name: min(v) for name, v in rounds.items()}
    return {
        "k": k,
        "seed_step_ms": best,
        "round_ms": rounds,
        "wall_seed_step_ms": {name: min(v) for name, v in walls.items()},
        "wall_round_ms": walls,
        "x_separate": {name: best["separate"] / v for name, v in best.items()},
        "max_loss_diff": diff,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("overrides", nargs="*", default=DEFAULT_OVERRIDES, help="Hydra overrides of the run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 4, 8], help="the k to measure")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=8, help="distinct batches per seed (cycled)")
    parser.add_argument("--repeats", type=int, default=5, help="steps timed per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--speed", default="default", help="the speed option of every way (fast: fused AdamW)"
    )
    parser.add_argument("--no-vmap", dest="vmap", action="store_false", help="skip the vmap variant")
    parser.add_argument("--out", default="logs/benchmarks/seeds.json")
    args = parser.parse_args(argv)
    overrides = ["logger=csv", f"speed={args.speed}", *args.overrides]
    cfg = compose_config(overrides, "/tmp/clay_exp_benchmark_seeds")
    if cfg.injection != "add":
        parser.error(f"the batched model is written for injection=add, the config has {cfg.injection!r}")
    rows = []
    for threads in args.threads:
        with torch_threads(threads):
            for k in args.seeds:
                rows.append({"threads": threads, **measure(cfg, k, args)})
    report = {"machine": machine(), "overrides": args.overrides, "speed": args.speed, "rows": rows}
    report["rounds"] = args.rounds
    names = list(rows[0]["seed_step_ms"])
    header = ["threads", "k", *(f"{n} ms" for n in names), *(f"{n} x separate" for n in names[1:])]
    header.append("max |loss diff|")
    table = [
        [r["threads"], r["k"], *(fmt(r["seed_step_ms"][n]) for n in names),
         *(fmt(r["x_separate"][n], ".2f") for n in names[1:]), f"{r['max_loss_diff']:.1e}"]
        for r in rows
    ]  # fmt: skip
    print(f"\nMachine: {report['machine']['description']}")
    print("CPU ms per seed-step (forward, backward, clipping, AdamW), best of the interleaved rounds\n")
    print(markdown_table(header, table))
    print(f"\nwritten: {write_json(args.out, report)}")
    return report


if __name__ == "__main__":
    main()
