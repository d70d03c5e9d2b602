"""clay_exp.benchmarking measures what it says: fake clocks and stub models, never the machine's speed."""

from __future__ import annotations

import json
import statistics

import pytest
import torch
from torch import nn

from clay_exp import benchmarking as bm


class FakeClock:
    """A clock that moves only when told: `advance(seconds)`."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SlowStep(nn.Module):
    """A model whose forward costs `forward_s` and backward `backward_s` seconds of a fake clock."""

    def __init__(self, clock: FakeClock, forward_s: float, backward_s: float = 0.0) -> None:
        super().__init__()
        self.clock, self.forward_s, self.backward_s = clock, forward_s, backward_s
        self.weight = nn.Parameter(torch.ones(1))
        self.seen: list[int] = []

    def param_groups(self) -> list[dict]:
        return [{"params": [self.weight], "lr_scale": 1.0}]

    def forward(self, batch: dict) -> torch.Tensor:
        self.seen.append(int(batch["i"]))
        self.clock.advance(self.forward_s)
        clock, backward_s = self.clock, self.backward_s

        class Delay(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x.clone()

            @staticmethod
            def backward(ctx, grad):
                clock.advance(backward_s)
                return grad

        return Delay.apply(self.weight * batch["x"]).sum()


def batches(n: int) -> list[dict]:
    return [{"i": torch.tensor(i), "x": torch.ones(1)} for i in range(n)]


def test_train_steps_times_forward_backward_and_drops_warmup():
    clock = FakeClock()
    model = SlowStep(clock, forward_s=0.012, backward_s=0.008)
    optimizer = bm.make_optimizer(model)
    times = bm.train_steps(model, optimizer, batches(5), torch.device("cpu"), warmup=2, clock=clock)
    assert model.seen == [0, 1, 2, 3, 4]  # every batch stepped, warm-up ones too
    assert times == pytest.approx([0.020] * 3)  # only the 3 after warm-up, forward + backward each
    assert model.weight.item() != 1.0  # the optimizer stepped


def test_whole_steps_count_the_time_spent_fetching_each_batch():
    clock = FakeClock()
    model = SlowStep(clock, forward_s=0.010)

    def loader():  # a DataLoader that needs 5 ms per batch
        for batch in batches(4):
            clock.advance(0.005)
            yield batch

    optimizer = bm.make_optimizer(model)
    times = bm.train_steps(model, optimizer, loader(), torch.device("cpu"), 1, whole_steps=True, clock=clock)
    # start-to-start differences after the warm-up step: the fetch of the next batch is in each
    assert times == pytest.approx([0.015, 0.015, 0.010])


def test_an_injected_delay_shows_up_in_the_ratio_of_interleaved_best_medians():
    """The encoding benchmark's chain: train_steps per round, interleaved, best median, ratio to `none`."""
    clock = FakeClock()
    models = {"none": SlowStep(clock, 0.010), "slow": SlowStep(clock, 0.030)}
    # a neighbour's load, in call order (none, slow, none, slow, ...): two rounds of `none` are hit
    loads = iter([0.0, 0.050, 0.020, 0.0, 0.020, 0.0])

    def measure(model: SlowStep) -> float:
        burst = next(loads)
        model.forward_s += burst
        try:
            steps = bm.train_steps(
                model, bm.make_optimizer(model), batches(3), torch.device("cpu"), 0, clock=clock
            )
        finally:
            model.forward_s -= burst
        return 1e3 * statistics.median(steps)

    rounds = bm.interleaved_rounds({name: (lambda m=m: measure(m)) for name, m in models.items()}, rounds=3)
    assert rounds["none"] == pytest.approx([10.0, 30.0, 30.0])
    assert rounds["slow"] == pytest.approx([80.0, 30.0, 30.0])
    best = {name: bm.best_of_rounds(values) for name, values in rounds.items()}
    # the best round recovers the injected 3x (a median of rounds would say 1x, a mean 2x)
    assert best["slow"][0] / best["none"][0] == pytest.approx(3.0)
    assert best["none"][1] == pytest.approx(2.0) and best["slow"][1] == pytest.approx(80 / 30 - 1)


def test_interleaved_rounds_visit_every_variant_once_per_round_in_order():
    calls: list[str] = []

    def measure(name: str):
        def run() -> str:
            calls.append(name)
            return f"{name}{calls.count(name)}"

        return run

    results = bm.interleaved_rounds({n: measure(n) for n in ("a", "b", "c")}, rounds=3)
    assert calls == ["a", "b", "c"] * 3  # not a, a, a, b, b, b, ...
    assert results == {"a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"], "c": ["c1", "c2", "c3"]}
    with pytest.raises(ValueError, match="rounds=0"):
        bm.interleaved_rounds({"a": measure("a")}, rounds=0)


def test_best_of_rounds_takes_the_smallest_median_and_its_spread():
    best, spread = bm.best_of_rounds([12.0, 10.0, 15.0, 11.0])
    assert best == 10.0 and spread == pytest.approx(0.5)
    assert bm.best_of_rounds([7.0]) == (7.0, 0.0)


def test_time_calls_warms_up_untimed_and_times_each_call():
    clock = FakeClock()
    durations = iter([9.0, 9.0, 0.1, 0.3, 0.2])  # the first two are the warm-up calls
    times = bm.time_calls(lambda: clock.advance(next(durations)), repeats=3, warmup=2, clock=clock)
    assert times == pytest.approx([0.1, 0.3, 0.2])
    assert bm.summary([1e3 * t for t in times]) == pytest.approx({"best": 100.0, "median": 200.0})


def test_wall_and_cpu_ms_are_medians_of_their_own_clocks():
    wall, cpu = FakeClock(), FakeClock()
    costs = iter([(1.0, 1.0), (0.004, 0.001), (0.002, 0.002), (0.009, 0.003)])

    def work() -> None:
        w, c = next(costs)
        wall.advance(w)
        cpu.advance(c)

    result = bm.wall_and_cpu_ms(work, repeats=3, warmup=1, wall=wall, cpu=cpu)
    assert result == pytest.approx({"wall_ms": 4.0, "cpu_ms": 2.0})


def test_torch_threads_sets_then_restores_even_on_error():
    before = torch.get_num_threads()
    other = 2 if before != 2 else 1
    with bm.torch_threads(other) as inside:
        assert inside == other == torch.get_num_threads()
        assert bm.machine()["torch_threads"] == other  # what was in effect, not the machine's cores
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), bm.torch_threads(other):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with bm.torch_threads(None) as inside:
        assert inside == before
    with pytest.raises(ValueError, match="threads=0"), bm.torch_threads(0):
        pass


def test_write_json_creates_folders_and_reads_back_equal(tmp_path):
    rows = [
        {"encoding": "none", "step_ms": 10.5, "round_ms": [10.5, 11.0]},
        {"encoding": "x", "skipped": "why"},
    ]
    payload = {"machine": bm.machine(), "encodings": rows, "out": tmp_path / "elsewhere"}
    path = bm.write_json(tmp_path / "a" / "b" / "bench.json", payload)
    assert path == tmp_path / "a" / "b" / "bench.json"
    saved = json.loads(path.read_text())
    assert saved["encodings"] == rows and saved["out"] == str(tmp_path / "elsewhere")
    assert {"python", "torch", "cpu", "cores", "device", "description", "load_average"} <= set(
        saved["machine"]
    )


def test_markdown_table_lays_out_every_cell_and_rejects_ragged_rows():
    table = bm.markdown_table(["a", "b"], [["1", 2.5], [bm.fmt(None), bm.fmt(False)]])
    lines = table.splitlines()
    assert lines == ["| a | b |", "|---|---|", "| 1 | 2.5 |", "| - | NO |"]
    with pytest.raises(ValueError, match=r"table row \['1'\] has 1 cells, the header 2"):
        bm.markdown_table(["a", "b"], [["1"]])
    assert (bm.fmt(True), bm.fmt(1.26), bm.fmt(1.26, ".2f"), bm.fmt(3)) == ("yes", "1.3", "1.26", "3")


def test_reason_names_the_innermost_error_first_line():
    try:
        try:
            raise ImportError("geoclip is not installed\npip install '.[geoclip]'")
        except ImportError as inner:
            raise RuntimeError("Error instantiating encoding") from inner
    except RuntimeError as outer:
        assert bm.reason(outer) == "ImportError: geoclip is not installed"


def test_step_flops_counts_a_linear_forward_and_backward():
    """One Linear: 2·B·in·out FLOPs forward; backward adds the input's and the weight's gradients
    (the same again each): 3x in all; 2x when the input needs no gradient."""
    batch, fan_in, fan_out = 8, 16, 32
    layer = nn.Linear(fan_in, fan_out)
    forward = 2 * batch * fan_in * fan_out
    x = torch.randn(batch, fan_in, requires_grad=True)
    assert bm.step_flops(lambda: layer(x).sum()) == 3 * forward
    assert x.grad is not None and layer.weight.grad is not None  # it did back-propagate
    frozen_input = torch.randn(batch, fan_in)
    assert bm.step_flops(lambda: layer(frozen_input).sum()) == 2 * forward


def test_matmul_rate_is_timed_like_a_step():
    clock = FakeClock()
    calls = []

    real_matmul = torch.Tensor.__matmul__

    def slow_matmul(a, b):
        calls.append(a.shape)
        clock.advance(0.002)
        return real_matmul(a, b)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.Tensor, "__matmul__", slow_matmul)
        ms = bm.matmul_ms(size=64, repeats=3, clock=clock)
    assert ms == pytest.approx(2.0) and len(calls) == 4  # one warm-up + three timed
    assert bm.matmul_gflops(1024, 10.0) == pytest.approx(2 * 1024**3 / 0.01 / 1e9)
