"""The ways a PyTorch training step is commonly written, each eager, compiled (jitgrad.compile)
and in torch eager (one thread), on W1's MLP 2-16-16-1 (ReLU, batch 100, float64, MSE):

    zero_grad first     opt.zero_grad(); loss.backward(); opt.step()
    zero_grad last      loss.backward(); opt.step(); opt.zero_grad()
    module.zero_grad    model.zero_grad() instead of the optimizer's
    frozen layer        zero_grad first, the first layer's parameters requires_grad=False
    scheduler           zero_grad first, then StepLR.step() after opt.step()
    clip_grad_norm_     zero_grad first, clip_grad_norm_(..., 1.0) before opt.step()
    manual update       p.grad = None; backward; p -= lr * p.grad under no_grad
    compiled module     zero_grad first; compiled: `model = jitgrad.compile(model)`, the step eager
    module in step      zero_grad first; compiled: the model and the step compiled

Each step replays as one compiled call (but "compiled module", whose compiled column compiles
the model's forward alone: its backward is one node of the eager backward); a pattern that fell
back to a host call or to eager shows here as a compiled time well above "zero_grad first".

    python benchmarks/bench_step_patterns.py          # table of medians (interleaved rounds)
    pytest benchmarks/bench_step_patterns.py -o python_files='bench_*.py' --benchmark-only
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import _env  # noqa: E402

_env.one_thread()       # (before numpy and torch load)

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import jitgrad  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:     # the jitgrad cases still run
    torch = None

PATTERNS = ("zero_grad first", "zero_grad last", "module.zero_grad", "frozen layer", "scheduler",
            "clip_grad_norm_", "manual update", "compiled module", "module in step")
SYSTEMS = ("jitgrad", "jitgrad-compiled", "torch")


def make_step(lib, pattern, compiled=False):
    """The pattern's step on a fresh model (the same weights and data for every library)."""
    nn = lib.nn
    lib.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 1)).double()
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.uniform(-0.5, 0.5, tuple(p.shape))))
    X = lib.tensor(rng.standard_normal((100, 2)))
    y = lib.tensor(rng.standard_normal((100, 1)))
    if pattern == "frozen layer":
        for p in model[0].parameters():
            p.requires_grad_(False)
    params = list(model.parameters())
    opt = lib.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    sched = lib.optim.lr_scheduler.StepLR(opt, 100, 0.9)
    forward = lib.compile(model) if compiled and pattern in ("compiled module", "module in step") \
        else model

    def step():
        if pattern == "manual update":
            for p in params:
                p.grad = None
        elif pattern == "module.zero_grad":
            model.zero_grad()
        elif pattern != "zero_grad last":
            opt.zero_grad()
        loss = ((forward(X) - y) ** 2).mean()
        loss.backward()
        if pattern == "manual update":
            with lib.no_grad():
                for p in params:
                    p -= 0.01 * p.grad
            return loss
        if pattern == "clip_grad_norm_":
            nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if pattern == "scheduler":
            sched.step()
        if pattern == "zero_grad last":
            opt.zero_grad()
        return loss
    if not compiled:
        return step
    if pattern != "compiled module":
        step = lib.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # (a pattern that runs eagerly fails here)
        step()
    return step


def _step_of(system, pattern):
    if system == "torch":
        if torch is None:
            return None
        return make_step(torch, pattern)
    return make_step(jitgrad, pattern, compiled=system == "jitgrad-compiled")


# ---- pytest-benchmark ----------------------------------------------------------------------------
@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_step_pattern(benchmark, pattern, system):
    fn = _step_of(system, pattern)
    if fn is None:
        pytest.skip("torch is not installed")
    for _ in range(20):
        fn()
    benchmark.group = pattern
    benchmark.extra_info.update(pattern=pattern, system=system)
    benchmark(fn)


# ---- standalone: interleaved rounds, medians, ratios -----------------------------------------------
def measure(rounds=11, calls=300):
    """{pattern: {system: median seconds per call}}, systems interleaved within each round."""
    results = {}
    for pattern in PATTERNS:
        fns = {s: f for s in SYSTEMS if (f := _step_of(s, pattern)) is not None}
        times = {s: [] for s in fns}
        for _ in range(rounds):
            for s, fn in fns.items():
                t = time.perf_counter()
                for _ in range(calls):
                    fn()
                times[s].append((time.perf_counter() - t) / calls)
        results[pattern] = {s: statistics.median(v) for s, v in times.items()}
    return results


def main():
    rounds = int(os.environ.get("BENCH_ROUNDS", "11"))
    res = measure(rounds)
    print(f"jitgrad {jitgrad.__version__}, torch {torch.__version__ if torch else '(not installed)'}, "
          f"one thread, median of {rounds} interleaved rounds, us per step")
    print(f"{'pattern':18s} {'eager':>9s} {'compiled':>9s} {'torch':>9s} {'compiled vs torch':>18s}")
    for pattern, r in res.items():
        t, c = r.get("torch"), r["jitgrad-compiled"]
        faster = f"{t / c:.1f}x faster" if t else "-"
        print(f"{pattern:18s} {r['jitgrad'] * 1e6:9.1f} {c * 1e6:9.1f} "
              f"{t * 1e6 if t else float('nan'):9.1f} {faster:>18s}")


if __name__ == "__main__":
    main()
