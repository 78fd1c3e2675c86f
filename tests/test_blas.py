"""engine/blas.py: the kernels' matrix products (numpy's OpenBLAS, beta accumulation) and the
fallbacks used where numpy's OpenBLAS is not found."""
import ctypes

import numpy as np
import pytest
from numba import njit

from jitgrad.engine import blas

SHAPES = [(32, 16, 1), (1, 16, 16), (1, 16, 1), (1, 1, 5), (5, 1, 1), (1, 1, 1), (7, 1, 4),
          (32, 16, 16), (64, 128, 10), (3, 0, 2), (0, 4, 3)]
_gemm = njit(blas.gemm)


def _operands(rng, dtype, m, k, n, ta, tb):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    stored_a = np.ascontiguousarray(a.T) if ta else a
    stored_b = np.ascontiguousarray(b.T) if tb else b
    return stored_a, stored_b, (stored_a.T if ta else stored_a) @ (stored_b.T if tb else stored_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_computes_numpys_matmul_bit_for_bit_and_accumulates(dtype, ta, tb):
    """Each shape class (dot, gemv either side, gemm, an empty inner dim) gives np.matmul's bits,
    at an offset in a larger buffer; beta 1 adds alpha * product to what is there."""
    rng = np.random.default_rng(0)
    for m, k, n in SHAPES:
        sa, sb, ref = _operands(rng, dtype, m, k, n, ta, tb)
        a = np.concatenate([np.ones(3, dtype), sa.reshape(-1)])
        b = np.concatenate([np.ones(5, dtype), sb.reshape(-1)])
        out = np.full(m * n + 4, np.nan, dtype)
        _gemm(ta, tb, m, n, k, 1.0, a, 3, b, 5, 0.0, out, 2)
        np.testing.assert_array_equal(out[2: 2 + m * n], ref.reshape(-1), err_msg=str((m, k, n)))
        assert np.isnan(out[:2]).all() and np.isnan(out[2 + m * n:]).all()    # nothing else written
        before = rng.standard_normal(m * n).astype(dtype)
        acc = before.copy()
        _gemm(ta, tb, m, n, k, 2.0, a, 3, b, 5, 1.0, acc, 0)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(acc, before + 2 * ref.reshape(-1), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["python", "numba"])
def test_fallbacks_compute_the_same_routines(dtype, kind):
    """Without numpy's OpenBLAS the symbols point to these: cblas's row-major gemm, gemv and dot."""
    dt = np.dtype(dtype)
    if kind == "python":
        routines = blas._python_fallbacks(dt)
    else:
        routines = {name: fn.ctypes for name, fn in blas._numba_fallbacks(dt).items()}
    real = ctypes.c_float if dtype == np.float32 else ctypes.c_double
    if kind == "python":
        def address(x):
            return x.ctypes.data
    else:
        def address(x):
            return x.ctypes.data_as(ctypes.POINTER(real))
    rng = np.random.default_rng(1)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for ta in (False, True):
        for tb in (False, True):
            sa, sb, ref = _operands(rng, dtype, 6, 5, 4, ta, tb)
            c = np.ones((6, 4), dtype)
            routines["gemm"](blas.ROW_MAJOR, blas.TRANS if ta else blas.NO_TRANS, blas.TRANS if tb else blas.NO_TRANS,
                             6, 4, 5, 2.0, address(sa), sa.shape[1], address(sb), sb.shape[1],
                             1.0, address(c), 4)
            np.testing.assert_allclose(c, 1 + 2 * ref, **tol)
    a = rng.standard_normal((6, 5)).astype(dtype)
    x = rng.standard_normal(6).astype(dtype)
    y = np.full(5, np.nan, dtype)           # beta 0 overwrites, nan included
    routines["gemv"](blas.ROW_MAJOR, blas.TRANS, 6, 5, 1.0, address(a), 5, address(x), 1,
                     0.0, address(y), 1)
    np.testing.assert_allclose(y, a.T @ x, **tol)
    r = routines["dot"](6, address(x), 1, address(a[:, 0].copy()), 1)
    np.testing.assert_allclose(r, x @ a[:, 0], **tol)


def test_without_numpys_openblas_the_kernels_use_the_fallbacks():
    """A numpy built against another BLAS (no scipy-openblas64 in its wheel): the symbols point
    to the Numba callbacks, and a matmul's backward and a compiled replay still compute."""
    import os
    import subprocess
    import sys
    script = """
import glob
real_glob = glob.glob
glob.glob = lambda pattern, *a, **k: [] if "openblas" in pattern else real_glob(pattern, *a, **k)
import numpy as np
import jitgrad
from jitgrad.engine import blas
assert not blas.NUMPY_BLAS
rng = np.random.default_rng(0)
x = jitgrad.tensor(rng.standard_normal((5, 4)), requires_grad=True)
w = jitgrad.tensor(rng.standard_normal((4, 3)), requires_grad=True)
(x @ w).sum().backward()
np.testing.assert_allclose(x.grad.numpy(), np.ones((5, 3)) @ w.detach().numpy().T, rtol=1e-12)
np.testing.assert_allclose(w.grad.numpy(), x.detach().numpy().T @ np.ones((5, 3)), rtol=1e-12)
wd = w.detach()
step = jitgrad.compile(lambda a: (a @ wd).tanh().sum(), fullgraph=True)
for k in range(3):
    xk = x.detach() * (k + 1)
    out = step(xk)
    np.testing.assert_allclose(out.item(), np.tanh(xk.numpy() @ wd.numpy()).sum(), rtol=1e-12)
assert not any(isinstance(v, str) for v in step.traces.values())
print("ok")
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout[-2000:] + r.stderr[-3000:]
