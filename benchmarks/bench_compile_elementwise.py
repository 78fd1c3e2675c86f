"""A small-model training step whose activations and loss use the elementwise family, in jitgrad
eager, jitgrad.compile (replayed by the forward kernels) and torch eager, one thread:

    MLP 32-64-64-1, batch 64, float32, activation A after each hidden layer, loss
    mean(clamp(err, -1, 1) ** 2) + 1e-3 * mean(maximum(out, y)), one Adam step

    pytest benchmarks/bench_compile_elementwise.py -o python_files='bench_*.py' --benchmark-only
"""
import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jitgrad  # noqa: E402

try:
    import torch
    torch.set_num_threads(1)
except ImportError:     # the jitgrad cases still run
    torch = None

ACTIVATIONS = {"gelu": lambda nn: nn.GELU(), "silu": lambda nn: nn.SiLU(),
               "leaky_relu": lambda nn: nn.LeakyReLU(0.1), "softplus": lambda nn: nn.Softplus()}


def make_step(lib, act):
    rng = np.random.default_rng(0)
    lib.manual_seed(0)
    nn = lib.nn
    model = nn.Sequential(nn.Linear(32, 64), ACTIVATIONS[act](nn), nn.Linear(64, 64),
                          ACTIVATIONS[act](nn), nn.Linear(64, 1))
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    x = lib.tensor(rng.standard_normal((64, 32)), dtype=lib.float32)
    y = lib.tensor(rng.standard_normal((64, 1)), dtype=lib.float32)

    def step():
        opt.zero_grad()
        out = model(x)
        loss = ((out - y).clamp(-1.0, 1.0) ** 2).mean() + 1e-3 * lib.maximum(out, y).mean()
        loss.backward()
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("system", ["jitgrad", "jitgrad.compile", "torch"])
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_step(benchmark, system, act):
    if system == "torch" and torch is None:
        pytest.skip("torch is not installed")
    step = make_step(torch if system == "torch" else jitgrad, act)
    if system == "jitgrad.compile":
        step = jitgrad.compile(step, fullgraph=True)     # (an eager fallback would raise)
    for _ in range(20):
        step()
    benchmark.group = f"MLP step, {act}"
    benchmark(step)
