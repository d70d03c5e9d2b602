"""Several seeds of one arm trained together as one batched model, against the same seeds trained
one after the other: what does a seed group (``seeds_per_process``, clay_exp.seed_group) save per
seed-step (issue 22, "feed the CPU")?

    python scripts/benchmark_seeds.py                        # k = 1, 2, 4, 8 on 1 and 2 threads
    python scripts/benchmark_seeds.py --seeds 2 3 4 5 6 7 8 --threads 1 --rounds 5
    python scripts/benchmark_seeds.py experiment=study_known_answer arm=none

For each k, k modules of the run's config (seeds 0..k-1: their own weights, encodings and data
order; ``--speed``, `default` unless told) take one training step each: forward, backward, gradient
clipping at the trainer's value, the optimizer, on their own batch.

* ``separate``: the k steps one after the other, as k runs (one per process) would take them;
* ``batched``: one step of all k as a seed group takes it: the backbones' weights stacked along a
  leading seed dimension (`clay_exp.models.stacked`: every matrix product one batched product,
  attention over the k·B sequences in one call), each seed's encoding on its own batch, each seed's
  own optimizer and clipping (`clay_exp.seed_group.OptimizerGroup`);
* ``batch xk``: one model on a batch k times larger, per 64 chips: the bound a seed-batching that
  made the matrices taller would approach (one set of weights; a batched product of k weight sets
  is k products of the single run's size).

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
from hydra.utils import instantiate
from torch import Tensor

from clay_exp.benchmarking import fmt, machine, make_optimizer, markdown_table, torch_threads, write_json
from clay_exp.config import compose_config
from clay_exp.models.stacked import backbone_parameters, stacked_losses
from clay_exp.seed_group import OptimizerGroup
from clay_exp.train import build_module

DEFAULT_OVERRIDES = ["experiment=study_known_answer", "arm=hierarchical"]
CLIP = 1.0  # configs/trainer/default.yaml: gradient_clip_val


# -- the ways to take k seed-steps ------------------------------------------------------------------------
def noise_generator(step: int, seed: int) -> torch.Generator:
    """The masks of seed `seed` at `step`, the same for every way (the MAE draws its noise first)."""
    return torch.Generator().manual_seed(1_000 * step + seed)


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
        self.k, self.steps = k, steps

    def batch(self, seed: int, i: int) -> dict[str, Tensor]:
        return self.batches[seed][i % len(self.batches[seed])]

    # separate: one module after the other, each its own forward
    def separate_setup(self) -> list[tuple[Any, torch.optim.Optimizer]]:
        modules = [copy.deepcopy(m) for m in self.modules]
        return [(m, make_optimizer(m)) for m in modules]

    def separate_step(self, state: list, i: int) -> list[float]:
        losses = []
        for s, (m, opt) in enumerate(state):
            loss = m(self.batch(s, i), generator=noise_generator(i % self.steps, s))
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], CLIP)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        return losses

    # batched: as a seed group steps (stacked backbones, per-seed encodings and optimizers)
    def batched_setup(self) -> tuple[list[Any], OptimizerGroup, list[dict[str, Tensor]]]:
        modules = [copy.deepcopy(m) for m in self.modules]
        backbones = [backbone_parameters(m.model) for m in modules]
        return modules, OptimizerGroup([make_optimizer(m) for m in modules], CLIP), backbones

    def batched_step(
        self, state: tuple[list[Any], OptimizerGroup, list[dict[str, Tensor]]], i: int
    ) -> list[float]:
        modules, optimizer, backbones = state
        images, conds, noises = [], [], []
        for s, m in enumerate(modules):
            batch = self.batch(s, i)
            location = m.encoding(batch) if m.encoding.out_dim > 0 else None
            b = batch["image"].shape[0]
            images.append(batch["image"])
            conds.append(m.model.condition(location, b))
            noise = torch.rand(b, m.model.num_patches, generator=noise_generator(i % self.steps, s))
            noises.append(noise)
        losses = stacked_losses([m.model for m in modules], images, conds, noises, backbones)
        losses.sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return [float(v) for v in losses.detach()]


def bigger_batch_setup(cfg: Any, k: int) -> tuple[Any, torch.optim.Optimizer, dict[str, Tensor], Any]:
    torch.manual_seed(0)
    module = build_module(cfg).train()
    dm = instantiate(cfg.data, batch_size=cfg.data.batch_size * k)
    dm.render_once(1024)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    return module, make_optimizer(module), batch, noise_generator(0, 0)


def bigger_batch_step(state: tuple) -> None:
    module, optimizer, batch, generator = state
    module(batch, generator=generator).backward()
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
    sep, bat = seeds.separate_setup(), seeds.batched_setup()
    # the same first step both ways: each seed's loss to float tolerance (then the states part ways)
    first = [seeds.separate_step(sep, 0), seeds.batched_step(bat, 0)]
    diff = max(abs(a - b) for a, b in zip(*first, strict=True))
    big = bigger_batch_setup(cfg, k)
    measures = {
        "separate": lambda i: seeds.separate_step(sep, i + 1),
        "batched": lambda i: seeds.batched_step(bat, i + 1),
        "batch xk": lambda i: bigger_batch_step(big),
    }
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
