"""torch.linalg's decompositions in jitgrad and torch, side by side (pytest-benchmark, one thread):
the forward and a first-order backward of each op on a batch of well-conditioned matrices.

    pytest benchmarks/test_linalg.py --benchmark-only --benchmark-group-by=param:case

Both run the same function with their own module (``lib``); float64; the timed call records the
graph and backpropagates a fixed seed. The first call (Numba compile or load) is untimed.
"""
import numpy as np
import pytest

from . import _env

SIZES = [(8, 8), (8, 64)] if not _env.quick() else [(2, 4)]


def _spd(batch, n, seed=0):
    a = np.random.default_rng(seed).standard_normal((batch, n, n))
    return a @ np.swapaxes(a, -1, -2) / n + np.eye(n)


CASES = {
    "inv": lambda L, a, b: L.inv(a),
    "det": lambda L, a, b: L.det(a),
    "solve": lambda L, a, b: L.solve(a, b),
    "cholesky": lambda L, a, b: L.cholesky(a),
    "eigh": lambda L, a, b: L.eigh(a).eigenvalues,
    "svd": lambda L, a, b: L.svd(a, full_matrices=False).S,
    "qr": lambda L, a, b: L.qr(a).R,
    "pinv": lambda L, a, b: L.pinv(a),
}


def _lib(name):
    if name == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)
        return torch
    import jitgrad
    return jitgrad


@pytest.mark.parametrize("system", ["jitgrad", "torch"])
@pytest.mark.parametrize("shape", SIZES, ids=[f"{b}x{n}x{n}" for b, n in SIZES])
@pytest.mark.parametrize("case", list(CASES))
def test_linalg_forward_backward(benchmark, case, shape, system):
    lib = _lib(system)
    batch, n = shape
    a = lib.tensor(_spd(batch, n), dtype=lib.float64, requires_grad=True)
    b = lib.tensor(np.random.default_rng(1).standard_normal((batch, n, 2)), dtype=lib.float64)
    fn = CASES[case]

    def step():
        a.grad = None
        out = fn(lib.linalg, a, b)
        out.backward(lib.ones_like(out))

    step()                                  # untimed: compile or load the kernels
    benchmark.extra_info.update(case=case, shape=f"{batch}x{n}x{n}", system=system)
    benchmark.pedantic(step, rounds=1 if _env.quick() else 30, warmup_rounds=1 if not _env.quick() else 0)
