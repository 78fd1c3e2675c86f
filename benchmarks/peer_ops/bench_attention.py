"""Attention speed, jitgrad against PyTorch eager in the same run, one thread (pytest-benchmark):

    pytest benchmarks/peer_ops/bench_attention.py --benchmark-only --benchmark-columns=median,iqr,rounds

- sdpa: F.scaled_dot_product_attention forward and backward, causal, batch 8, 4 heads, 64 tokens,
  head size 32, float32;
- encoder-step: one training step (zero grads, forward, cross-entropy, backward, Adam) of a 2-layer
  TransformerEncoder (d_model 64, 4 heads, feed-forward 128, dropout 0, batch_first) on batch 16
  of 32 tokens, float32.

Kept out of the report's default collection (its name is not test_*.py): the report times the
shared workloads only.
"""
import numpy as np
import pytest

from benchmarks import _env

_env.one_thread()

import jitgrad  # noqa: E402

try:
    import torch  # noqa: E402
    torch.set_num_threads(1)
except ImportError:
    torch = None

LIBS = ["jitgrad", "torch"]


def _lib(name):
    if name == "torch" and torch is None:
        pytest.skip("PyTorch is not installed")
    return jitgrad if name == "jitgrad" else torch


@pytest.mark.parametrize("name", LIBS)
def test_sdpa(benchmark, name):
    lib = _lib(name)
    rng = np.random.default_rng(0)
    q, k, v = (lib.tensor(rng.standard_normal((8, 4, 64, 32)).astype(np.float32), requires_grad=True)
               for _ in range(3))

    def step():
        out = lib.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        out.sum().backward()
    step()
    benchmark(step)


@pytest.mark.parametrize("name", LIBS)
def test_encoder_step(benchmark, name):
    lib = _lib(name)
    lib.manual_seed(0)
    layer = lib.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, batch_first=True)
    model = lib.nn.Sequential(lib.nn.Embedding(50, 64), lib.nn.TransformerEncoder(layer, 2), lib.nn.Linear(64, 50))
    if name == "torch":
        model[1].enable_nested_tensor = False
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = lib.tensor(rng.integers(0, 50, (16, 32)))
    y = lib.tensor(rng.integers(0, 50, (16, 32)))

    def step():
        opt.zero_grad()
        loss = lib.nn.functional.cross_entropy(model(x).reshape(-1, 50), y.reshape(-1))
        loss.backward()
        opt.step()
    step()
    benchmark(step)
