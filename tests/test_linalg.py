"""jitgrad.linalg beyond the generated op tests (tests/test_ops_gradcheck.py and
test_ops_higher_order.py gradcheck, gradgradcheck and compare every decomposition with torch):
torch's errors, the norms, the top-level names, the extra outputs of lstsq/qr/svd, singular
matrices. Values are checked against numpy always, and against torch where it is installed."""
import math

import numpy as np
import pytest

import jitgrad
from jitgrad import linalg as LA

try:
    import torch
    torch.set_num_threads(1)
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
RNG = np.random.default_rng(0)
A33 = RNG.standard_normal((3, 3))
SPD = A33 @ A33.T + 3 * np.eye(3)


def _t(v, grad=False, dtype=None):
    return jitgrad.tensor(v, dtype=dtype or jitgrad.float64, requires_grad=grad)


# ---- errors: the type and the message torch gives ----------------------------------------------
ERRORS = [
    ("inv", lambda L, lib: L.inv(lib.ones(3)), RuntimeError,
     "linalg.inv: The input tensor A must have at least 2 dimensions."),
    ("inv", lambda L, lib: L.inv(lib.ones(2, 3)), RuntimeError,
     "linalg.inv: A must be batches of square matrices, but they are 2 by 3 matrices"),
    ("inv", lambda L, lib: L.inv(lib.ones(3, 3, dtype=lib.long)), RuntimeError,
     "linalg.inv: Expected a floating point or complex tensor as input. Got Long"),
    ("inv", lambda L, lib: L.inv(lib.ones(3, 3)), "LinAlgError",
     "linalg.inv: The diagonal element 2 is zero, the inversion could not be completed because the "
     "input matrix is singular."),
    ("inv", lambda L, lib: L.inv(lib.ones(2, 3, 3)), "LinAlgError",
     "linalg.inv: (Batch element 0): The diagonal element 2 is zero, the inversion could not be "
     "completed because the input matrix is singular."),
    ("inverse", lambda L, lib: lib.inverse(lib.zeros(2, 2)), "LinAlgError",
     "linalg.inv: The diagonal element 1 is zero, the inversion could not be completed because the "
     "input matrix is singular."),
    ("det", lambda L, lib: L.det(lib.ones(2, 3)), RuntimeError,
     "linalg.det: A must be batches of square matrices, but they are 2 by 3 matrices"),
    ("slogdet", lambda L, lib: L.slogdet(lib.ones(2, 3)), RuntimeError,
     "linalg.slogdet: A must be batches of square matrices, but they are 2 by 3 matrices"),
    ("solve", lambda L, lib: L.solve(lib.ones(3, 3), lib.ones(3)), "LinAlgError",
     "torch.linalg.solve: The solver failed because the input matrix is singular."),
    ("solve", lambda L, lib: L.solve(lib.zeros(2, 2, 2), lib.ones(2, 2, 2)), "LinAlgError",
     "torch.linalg.solve: (Batch element 0): The solver failed because the input matrix is singular."),
    ("solve", lambda L, lib: L.solve(lib.eye(3), lib.ones(2)), RuntimeError,
     "linalg.solve: Incompatible shapes of A and B for the equation AX = B (3x3 and 2x1)"),
    ("solve", lambda L, lib: L.solve(lib.eye(3), lib.ones(2, 4), left=False), RuntimeError,
     "linalg.solve: Incompatible shapes of A and B for the equation XA = B (3x3 and 2x4)"),
    ("solve", lambda L, lib: L.solve(lib.eye(3), lib.ones(3, 3, dtype=lib.float64)), RuntimeError,
     "linalg.solve: Expected A and B to have the same dtype, but found A of type Float and B of type "
     "Double instead"),
    ("cholesky", lambda L, lib: L.cholesky(-lib.eye(3)), "LinAlgError",
     "linalg.cholesky: The factorization could not be completed because the input is not "
     "positive-definite (the leading minor of order 1 is not positive-definite)."),
    ("cholesky", lambda L, lib: L.cholesky(lib.stack([lib.eye(2), -lib.eye(2)])), "LinAlgError",
     "linalg.cholesky: (Batch element 1): The factorization could not be completed because the input "
     "is not positive-definite (the leading minor of order 1 is not positive-definite)."),
    ("eigh", lambda L, lib: L.eigh(lib.ones(2, 3)), RuntimeError,
     "linalg.eigh: A must be batches of square matrices, but they are 2 by 3 matrices"),
    ("eigh", lambda L, lib: L.eigh(lib.eye(2), UPLO="X"), RuntimeError,
     "Expected UPLO argument to be 'L' or 'U', but got X"),
    ("qr", lambda L, lib: L.qr(lib.ones(3)), RuntimeError,
     "linalg.qr: The input tensor A must have at least 2 dimensions."),
    ("qr", lambda L, lib: L.qr(lib.ones(3, 2), mode="x"), RuntimeError,
     "qr received unrecognized mode 'x' but expected one of 'reduced' (default), 'r', or 'complete'"),
    ("svd", lambda L, lib: L.svd(lib.ones(3)), RuntimeError,
     "linalg.svd: The input tensor A must have at least 2 dimensions."),
    ("svd", lambda L, lib: L.svd(lib.tensor([[1.0, math.nan], [math.nan, 1.0]])), "LinAlgError",
     "linalg.svd: The algorithm failed to converge because the input matrix contained non-finite values."),
    ("pinv", lambda L, lib: L.pinv(lib.tensor([[1.0, math.nan], [math.nan, 1.0]])), "LinAlgError",
     "linalg.svd: The algorithm failed to converge because the input matrix contained non-finite values."),
    ("pinv", lambda L, lib: L.pinv(lib.ones(3)), RuntimeError,
     "linalg.pinv(Float{[3]}): expected a tensor with 2 or more dimensions of float, double, cfloat or "
     "cdouble types"),
    ("inv", lambda L, lib: L.inv(lib.eye(2, dtype=lib.float16)), RuntimeError,
     "linalg.inv: Low precision dtypes not supported. Got Half"),
    ("det", lambda L, lib: L.det(lib.eye(2, dtype=lib.float16)), NotImplementedError,
     "\"lu_cpu\" not implemented for 'Half'"),
    ("svd", lambda L, lib: L.svdvals(lib.eye(2, dtype=lib.float16)), NotImplementedError,
     "\"linalg_svd_cpu\" not implemented for 'Half'"),
    ("pinv", lambda L, lib: L.pinv(lib.eye(2, dtype=lib.float16)), RuntimeError,
     "linalg.pinv(Half{[2, 2]}): expected a tensor with 2 or more dimensions of float, double, cfloat or "
     "cdouble types"),
    ("lstsq", lambda L, lib: L.lstsq(lib.ones(3, 2), lib.ones(4, 2)), RuntimeError,
     "torch.linalg.lstsq: input.size(-2) should match other.size(-2)"),
]


def _raises(fn, lib, kind, message):
    kind = getattr(lib.linalg, kind) if isinstance(kind, str) else kind
    with pytest.raises(kind) as info:
        fn(lib.linalg, lib)
    assert str(info.value) == message


@pytest.mark.parametrize("name,fn,kind,message", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors(name, fn, kind, message):
    _raises(fn, jitgrad, kind, message)


@needs_torch
@pytest.mark.parametrize("name,fn,kind,message", ERRORS, ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_errors_are_torchs(name, fn, kind, message):
    _raises(fn, torch, kind, message)


def test_engine_usable_after_a_linalg_error():
    assert issubclass(LA.LinAlgError, RuntimeError)           # as torch.linalg.LinAlgError
    A = _t(np.ones((3, 3)), grad=True)
    with pytest.raises(LA.LinAlgError):
        LA.inv(A)
    B = _t(SPD, grad=True)
    LA.inv(B).sum().backward()
    np.testing.assert_allclose(B.grad.numpy(), -(np.linalg.inv(SPD).T @ np.ones((3, 3)) @ np.linalg.inv(SPD).T))


# ---- values and gradients against numpy and by hand -----------------------------------------
def test_values_match_numpy():
    A = _t(A33)
    np.testing.assert_allclose(LA.inv(A).numpy(), np.linalg.inv(A33))
    np.testing.assert_allclose(LA.det(A).item(), np.linalg.det(A33))
    sign, logabs = LA.slogdet(A)
    assert (sign.item(), logabs.item()) == pytest.approx(np.linalg.slogdet(A33))
    np.testing.assert_allclose(LA.cholesky(_t(SPD)).numpy(), np.linalg.cholesky(SPD))
    np.testing.assert_allclose(LA.cholesky(_t(SPD), upper=True).numpy(), np.linalg.cholesky(SPD).T)
    np.testing.assert_allclose(LA.eigh(_t(SPD)).eigenvalues.numpy(), np.linalg.eigvalsh(SPD))
    np.testing.assert_allclose(LA.svdvals(A).numpy(), np.linalg.svd(A33, compute_uv=False))
    b = RNG.standard_normal(3)
    np.testing.assert_allclose(LA.solve(A, _t(b)).numpy(), np.linalg.solve(A33, b))
    np.testing.assert_allclose(LA.solve(A, _t(b[None]), left=False).numpy(), b[None] @ np.linalg.inv(A33))
    np.testing.assert_allclose(LA.pinv(A).numpy(), np.linalg.pinv(A33), atol=1e-12)
    q, r = LA.qr(_t(A33[:, :2]))
    np.testing.assert_allclose((q @ r).numpy(), A33[:, :2], atol=1e-14)
    assert np.allclose(np.triu(r.numpy()), r.numpy())


def test_det_gradient_is_the_cofactor_matrix_at_a_singular_matrix():
    """det is smooth: at a singular A its gradient is still adj(A)^T (here by hand)."""
    A = _t([[1.0, 2.0], [2.0, 4.0]], grad=True)
    d = LA.det(A)
    assert d.item() == 0
    d.backward()
    np.testing.assert_allclose(A.grad.numpy(), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)


def test_logdet_hessian_is_minus_inverse_products():
    """grad logdet(A) = A^-T, and d/dA <A^-T, W> = -(A^-1 W A^-1)^T: create_graph through inv."""
    A = _t(SPD, grad=True)
    (g,) = jitgrad.autograd.grad(jitgrad.logdet(A), A, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.linalg.inv(SPD).T)
    W = RNG.standard_normal((3, 3))
    (h,) = jitgrad.autograd.grad((g * _t(W)).sum(), A)
    inv = np.linalg.inv(SPD)
    np.testing.assert_allclose(h.numpy(), -(inv @ W @ inv).T, rtol=1e-10)


def test_top_level_and_method_names():
    A = _t(SPD)
    np.testing.assert_allclose(jitgrad.det(A).item(), np.linalg.det(SPD))
    np.testing.assert_allclose(A.det().item(), np.linalg.det(SPD))
    np.testing.assert_allclose(jitgrad.inverse(A).numpy(), np.linalg.inv(SPD))
    np.testing.assert_allclose(A.inverse().numpy(), np.linalg.inv(SPD))
    np.testing.assert_allclose(jitgrad.logdet(A).item(), np.log(np.linalg.det(SPD)))
    assert math.isnan(jitgrad.logdet(_t([[0.0, 1.0], [1.0, 0.0]])).item())     # det < 0
    assert jitgrad.slogdet(A).logabsdet.item() == pytest.approx(np.log(np.linalg.det(SPD)))
    np.testing.assert_allclose(A.pinverse().numpy(), np.linalg.inv(SPD))


def test_float32_stays_float32():
    A = _t(SPD, grad=True, dtype=jitgrad.float32)
    for out in (LA.inv(A), LA.det(A), LA.cholesky(A), *LA.eigh(A), *LA.svd(A), *LA.qr(A), LA.pinv(A),
                LA.slogdet(A).logabsdet, LA.solve(A, A)):
        assert out.dtype == jitgrad.float32
    LA.det(A).backward()
    assert A.grad.dtype == jitgrad.float32
    np.testing.assert_allclose(A.grad.numpy(), np.linalg.det(SPD) * np.linalg.inv(SPD).T, rtol=1e-4)


def test_empty_matrices():
    e = _t(np.zeros((0, 0)))
    assert LA.det(e).item() == 1.0
    assert tuple(LA.inv(e).shape) == (0, 0)
    assert tuple(LA.svd(_t(np.zeros((2, 0, 3)))).U.shape) == (2, 0, 0)


def test_svd_shapes_and_modes():
    x = _t(RNG.standard_normal((2, 5, 3)))
    u, s, vh = LA.svd(x)
    assert (tuple(u.shape), tuple(s.shape), tuple(vh.shape)) == ((2, 5, 5), (2, 3), (2, 3, 3))
    u, s, vh = LA.svd(x, full_matrices=False)
    assert tuple(u.shape) == (2, 5, 3)
    np.testing.assert_allclose(((u * s.unsqueeze(-2)) @ vh).numpy(), x.numpy(), atol=1e-13)
    q, r = LA.qr(x, mode="complete")
    assert (tuple(q.shape), tuple(r.shape)) == ((2, 5, 5), (2, 5, 3))
    q, r = LA.qr(x, mode="r")
    assert tuple(q.shape) == (0,) and tuple(r.shape) == (2, 3, 3)


def test_lstsq_outputs():
    a, b = RNG.standard_normal((2, 5, 3)), RNG.standard_normal((2, 5, 2))
    r = LA.lstsq(_t(a), _t(b))
    expected = np.stack([np.linalg.lstsq(a[k], b[k], rcond=None)[0] for k in range(2)])
    np.testing.assert_allclose(r.solution.numpy(), expected, atol=1e-12)
    assert r.rank.tolist() == [3, 3] and tuple(r.residuals.shape) == (0,)
    r = LA.lstsq(_t(a), _t(b), driver="gelsd")
    np.testing.assert_allclose(r.residuals.numpy(), ((a @ expected - b) ** 2).sum(-2), rtol=1e-10)
    np.testing.assert_allclose(r.singular_values.numpy(), np.linalg.svd(a, compute_uv=False))


# ---- the norms ------------------------------------------------------------------------------
NORMS = [
    ("vector_norm", (3, 4), {}), ("vector_norm", (3, 4), {"ord": 1, "dim": 1}),
    ("vector_norm", (3, 4), {"ord": math.inf, "dim": (0, 1), "keepdim": True}),
    ("vector_norm", (3, 4), {"ord": 3, "dim": -1}), ("vector_norm", (3,), {"ord": 0.5}),
    ("matrix_norm", (3, 4), {}), ("matrix_norm", (2, 3, 4), {"ord": "nuc"}),
    ("matrix_norm", (3, 4), {"ord": 2}), ("matrix_norm", (3, 4), {"ord": -2}),
    ("matrix_norm", (3, 4), {"ord": 1}), ("matrix_norm", (3, 4), {"ord": -1}),
    ("matrix_norm", (3, 4), {"ord": math.inf}), ("matrix_norm", (2, 3, 4), {"ord": -math.inf, "keepdim": True}),
    ("matrix_norm", (3, 2, 4), {"ord": "fro", "dim": (0, 2)}), ("matrix_norm", (3, 2, 4), {"ord": 2, "dim": (2, 0),
                                                                                          "keepdim": True}),
    ("norm", (3, 4), {}), ("norm", (2, 3, 4), {}), ("norm", (3, 4), {"ord": 2}), ("norm", (4,), {"ord": 1}),
    ("norm", (3, 4), {"ord": "nuc"}), ("norm", (2, 3, 4), {"ord": 1, "dim": (1, 2)}),
    ("norm", (2, 3, 4), {"ord": 3, "dim": 1, "keepdim": True}),
]


def _numpy_norm(name, v, kw):
    ord_ = kw.get("ord", "fro" if name == "matrix_norm" else None)
    dim = kw.get("dim", (-2, -1) if name == "matrix_norm" else None)
    if name == "vector_norm":
        flat = np.abs(v) if dim is None else np.abs(v)
        p = kw.get("ord", 2)
        axes = tuple(range(v.ndim)) if dim is None else (dim if isinstance(dim, tuple) else (dim,))
        if p == math.inf:
            r = flat.max(axis=axes, keepdims=True)
        else:
            r = (flat ** p).sum(axis=axes, keepdims=True) ** (1 / p)
        return r if kw.get("keepdim") else r.squeeze(axes)
    if name == "norm" and ord_ is None:
        return np.sqrt((v ** 2).sum())
    if name == "norm" and dim is None:
        return np.linalg.norm(v, ord_)
    if isinstance(dim, int):
        return np.linalg.norm(v, ord_, axis=dim, keepdims=kw.get("keepdim", False))
    return np.linalg.norm(v, ord_, axis=dim, keepdims=kw.get("keepdim", False))


@pytest.mark.parametrize("name,shape,kw", NORMS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(NORMS)])
def test_norms(name, shape, kw):
    v = np.random.default_rng(len(shape)).standard_normal(shape) + 0.1
    x = _t(v, grad=True)
    out = getattr(LA, name)(x, **kw)
    np.testing.assert_allclose(out.detach().numpy(), _numpy_norm(name, v, kw), rtol=1e-10)
    assert jitgrad.autograd.gradcheck(lambda t: getattr(LA, name)(t, **kw), [x])
    if torch is None:
        return
    tx = torch.tensor(v, requires_grad=True)
    tout = getattr(torch.linalg, name)(tx, **kw)
    assert type(out.grad_fn).__name__ == type(tout.grad_fn).__name__
    assert tuple(out.shape) == tuple(tout.shape)
    seed = np.random.default_rng(1).standard_normal(tuple(tout.shape))
    out.backward(_t(seed))
    tout.backward(torch.tensor(seed))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_norm_errors():
    with pytest.raises(RuntimeError, match="linalg.norm: If dim is not specified but ord is, the input must "
                                           "be 1D or 2D. Got 3D."):
        LA.norm(_t(np.ones((2, 2, 2))), ord=2)
    with pytest.raises(RuntimeError, match="linalg.matrix_norm: Order 3 not supported."):
        LA.matrix_norm(_t(np.ones((2, 2))), ord=3)


def test_multi_dot_and_matrix_power():
    mats = [RNG.standard_normal(s) for s in ((2, 3), (3, 4), (4, 2))]
    np.testing.assert_allclose(LA.multi_dot([_t(m) for m in mats]).numpy(), np.linalg.multi_dot(mats))
    np.testing.assert_allclose(LA.matrix_power(_t(A33), 3).numpy(), np.linalg.matrix_power(A33, 3))
    np.testing.assert_allclose(LA.matrix_power(_t(A33), -2).numpy(), np.linalg.matrix_power(A33, -2))
    np.testing.assert_allclose(LA.matrix_power(_t(A33), 0).numpy(), np.eye(3))


# ---- solve_triangular, the *_ex variants and the compositions ------------------------------------
def test_solve_triangular_reads_one_triangle_and_gives_inf_on_a_zero_pivot():
    a, b = A33 + 3 * np.eye(3), RNG.standard_normal((3, 2))
    junk = a + np.tril(RNG.standard_normal((3, 3)), -1)        # below the diagonal: never read
    x = LA.solve_triangular(_t(junk), _t(b), upper=True)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(np.triu(a), b))
    unit = np.tril(a, -1) + np.eye(3)
    x = LA.solve_triangular(_t(a), _t(b.T), upper=False, left=False, unitriangular=True)
    np.testing.assert_allclose(x.numpy(), b.T @ np.linalg.inv(unit))
    x = LA.solve_triangular(_t(np.zeros((2, 2))), _t(np.ones((2, 1))), upper=False)
    assert np.isinf(x.numpy()[0, 0]) and np.isnan(x.numpy()[1, 0])
    with pytest.raises(RuntimeError, match="linalg.solve_triangular: The input tensor B must have at least 2 "
                                           "dimensions."):
        LA.solve_triangular(_t(a), _t(b[:, 0]), upper=True)
    with pytest.raises(TypeError):
        LA.solve_triangular(_t(a), _t(b))


def test_ex_variants_report_info_instead_of_raising():
    inv, info = LA.inv_ex(_t(np.ones((3, 3))))
    assert info.item() == 2 and info.dtype == jitgrad.int32
    assert LA.inv_ex(_t(SPD)).info.item() == 0
    np.testing.assert_allclose(LA.inv_ex(_t(SPD)).inverse.numpy(), np.linalg.inv(SPD))
    assert LA.cholesky_ex(_t(-np.eye(2))).info.item() == 1
    assert LA.cholesky_ex(_t(np.stack([np.eye(2), -np.eye(2)]))).info.tolist() == [0, 1]
    assert LA.solve_ex(_t(np.ones((2, 2))), _t(np.ones(2))).info.item() == 2
    with pytest.raises(LA.LinAlgError):
        LA.inv_ex(_t(np.ones((3, 3))), check_errors=True)


def test_matrix_rank_cond_cross_diagonal_vander():
    assert LA.matrix_rank(_t(np.ones((3, 3)))).item() == 1
    assert LA.matrix_rank(_t(np.stack([SPD, np.ones((3, 3))]))).tolist() == [3, 1]
    assert LA.matrix_rank(_t(SPD), hermitian=True).dtype == jitgrad.int64
    s = np.linalg.svd(A33, compute_uv=False)
    assert LA.cond(_t(A33)).item() == pytest.approx(s[0] / s[-1])
    assert LA.cond(_t(A33), "fro").item() == pytest.approx(np.linalg.cond(A33, "fro"))
    assert LA.cond(_t(A33), 1).item() == pytest.approx(np.linalg.cond(A33, 1))
    u, v = RNG.standard_normal((2, 3)), RNG.standard_normal((2, 3))
    x = _t(u, grad=True)
    np.testing.assert_allclose(LA.cross(x, _t(v)).detach().numpy(), np.cross(u, v))
    assert jitgrad.autograd.gradcheck(lambda t: LA.cross(t, _t(v)), [x])
    np.testing.assert_allclose(LA.diagonal(_t(A33), offset=1).numpy(), np.diagonal(A33, 1))
    np.testing.assert_allclose(LA.diagonal(_t(A33), offset=-2).numpy(), np.diagonal(A33, -2))
    np.testing.assert_allclose(LA.diagonal(_t(RNG.standard_normal((2, 3, 4))), dim1=0, dim2=2).shape, (3, 2))
    np.testing.assert_allclose(LA.vander(_t([1.0, 2.0, 3.0])).numpy(), np.vander([1.0, 2.0, 3.0], increasing=True))


def test_names_jitgrad_lacks_say_so():
    assert not hasattr(LA, "eig") and hasattr(LA, "tensorinv")
    with pytest.raises(NotImplementedError, match=r"jitgrad.linalg.eig is not implemented yet"):
        LA.eig(_t(A33))
    with pytest.raises(AttributeError):
        LA.no_such_function


@needs_torch
def test_extras_match_torch():
    ta = torch.tensor(A33)
    assert LA.cond(_t(A33)).item() == pytest.approx(torch.linalg.cond(ta).item(), rel=1e-12)
    assert LA.matrix_rank(_t(np.ones((3, 3)))).item() == torch.linalg.matrix_rank(torch.ones(3, 3)).item()
    np.testing.assert_allclose(LA.diagonal(_t(A33), offset=1).numpy(), torch.linalg.diagonal(ta, offset=1).numpy())
    assert LA.inv_ex(_t(np.ones((3, 3)))).info.item() == torch.linalg.inv_ex(torch.ones(3, 3)).info.item()
    x = LA.solve_triangular(_t(np.zeros((2, 2))), _t(np.ones((2, 1))), upper=False).numpy()
    y = torch.linalg.solve_triangular(torch.zeros(2, 2, dtype=torch.float64), torch.ones(2, 1, dtype=torch.float64),
                                      upper=False).numpy()
    np.testing.assert_array_equal(x, y)


# ---- the older top-level names ------------------------------------------------------------------
def test_legacy_top_level_names_against_numpy():
    a = RNG.standard_normal((4, 3))
    u, s, v = jitgrad.svd(_t(a))
    np.testing.assert_allclose(((u * s.unsqueeze(-2)) @ v.mT).numpy(), a, atol=1e-13)
    assert tuple(jitgrad.svd(_t(a), some=False).U.shape) == (4, 4)
    r = jitgrad.svd(_t(a), compute_uv=False)
    assert not r.U.numpy().any() and tuple(r.V.shape) == (3, 3)
    with pytest.warns(UserWarning, match="torch.qr is deprecated"):
        q, r = jitgrad.qr(_t(a))
    np.testing.assert_allclose((q @ r).numpy(), a, atol=1e-13)
    with pytest.warns(UserWarning, match="torch.cholesky is deprecated"):
        lo = jitgrad.cholesky(_t(SPD))
    b = RNG.standard_normal((3, 2))
    np.testing.assert_allclose(jitgrad.cholesky_solve(_t(b), lo).numpy(), np.linalg.solve(SPD, b))
    np.testing.assert_allclose(jitgrad.cholesky_solve(_t(b), lo.mT, upper=True).numpy(), np.linalg.solve(SPD, b))
    np.testing.assert_allclose(jitgrad.cholesky_inverse(lo).numpy(), np.linalg.inv(SPD))
    np.testing.assert_allclose(_t(SPD).matrix_power(3).numpy(), np.linalg.matrix_power(SPD, 3))


@needs_torch
@pytest.mark.filterwarnings("ignore:torch.cholesky is deprecated")
@pytest.mark.parametrize("name", ["svd", "cholesky_solve", "cholesky_inverse", "cholesky", "matrix_power"])
def test_legacy_names_gradients_match_torch(name):
    calls = {
        "svd": lambda lib, x: (lambda r: (r.U.abs(), r.S, r.V.abs()))(lib.svd(x)),
        "cholesky_solve": lambda lib, x: lib.cholesky_solve(x[:, :2], lib.linalg.cholesky(x @ x.mT)),
        "cholesky_inverse": lambda lib, x: lib.cholesky_inverse(lib.linalg.cholesky(x @ x.mT), upper=False),
        "cholesky": lambda lib, x: lib.cholesky(x @ x.mT, upper=True),
        "matrix_power": lambda lib, x: lib.matrix_power(x, 3),
    }
    v = A33 + 3 * np.eye(3)
    outs, grads = [], []
    for lib in (jitgrad, torch):
        x = lib.tensor(v, dtype=lib.float64, requires_grad=True)
        out = calls[name](lib, x)
        out = out if isinstance(out, tuple) else (out,)
        sum(((o * lib.tensor(np.linspace(0.5, 1.5, o.numel()).reshape(tuple(o.shape)))).sum() for o in out)).backward()
        outs.append([o.detach().numpy() for o in out])
        grads.append(x.grad.numpy())
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-8, atol=1e-11)


def test_det_second_derivative_at_a_singular_matrix():
    """For 2x2 matrices the cofactor matrix is linear in A: d/dA <cof(A), W> = [[W11, -W10],
    [-W01, W00]] everywhere, the singular [[1, 2], [2, 4]] included (the SVD path of the formula)."""
    A = _t([[1.0, 2.0], [2.0, 4.0]], grad=True)
    (g,) = jitgrad.autograd.grad(LA.det(A), A, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)
    W = np.array([[0.3, -1.2], [0.7, 2.0]])
    (h,) = jitgrad.autograd.grad((g * _t(W)).sum(), A)
    np.testing.assert_allclose(h.numpy(), [[W[1, 1], -W[1, 0]], [-W[0, 1], W[0, 0]]], atol=1e-12)
    B = _t(np.stack([[[1.0, 2.0], [2.0, 4.0]], SPD[:2, :2]]), grad=True)     # a mixed batch
    (g,) = jitgrad.autograd.grad(LA.det(B).sum(), B, create_graph=True)
    (h,) = jitgrad.autograd.grad((g * _t(np.stack([W, W]))).sum(), B)
    np.testing.assert_allclose(h.numpy()[1], [[W[1, 1], -W[1, 0]], [-W[0, 1], W[0, 0]]], atol=1e-12)


def test_tensorinv_and_tensorsolve():
    a = RNG.standard_normal((4, 6, 8, 3))
    ainv = LA.tensorinv(_t(a), ind=2)
    assert tuple(ainv.shape) == (8, 3, 4, 6)
    np.testing.assert_allclose(np.tensordot(a, ainv.numpy(), 2), np.eye(24).reshape(4, 6, 4, 6), atol=1e-9)
    with pytest.raises(RuntimeError, match=r"prod\(self.shape\[ind:\]\) == prod\(self.shape\[:ind\]\), "
                                           "but got 16 != 24"):
        LA.tensorinv(_t(np.ones((4, 6, 8, 2))))
    with pytest.raises(LA.LinAlgError, match="^inv: The diagonal element"):
        LA.tensorinv(_t(np.ones((2, 2, 2, 2))))
    A, B = RNG.standard_normal((2, 3, 6)), RNG.standard_normal((2, 3))
    x = _t(A, grad=True)
    X = LA.tensorsolve(x, _t(B))
    np.testing.assert_allclose(np.tensordot(A, X.detach().numpy(), 1), B, atol=1e-12)
    np.testing.assert_allclose(LA.tensorsolve(_t(np.moveaxis(A, 2, 0)), _t(B), dims=(0,)).numpy(), X.detach().numpy())
    assert jitgrad.autograd.gradcheck(lambda t: LA.tensorsolve(t, _t(B)), [x])


@needs_torch
def test_batch_mismatch_errors_name_torchs_operands():
    for lib in (jitgrad, torch):
        for fn in (lambda: lib.linalg.solve(lib.ones(2, 3, 3), lib.ones(4, 3, 1)),
                   lambda: lib.linalg.solve_triangular(lib.ones(2, 3, 3), lib.ones(4, 3, 1), upper=True)):
            with pytest.raises(RuntimeError, match=r"The size of tensor a \(4\) must match the size of tensor b "
                                                   r"\(2\) at non-singleton dimension 0"):
                fn()


def test_results_print_and_pickle_as_named_tuples():
    import pickle
    for r in (LA.slogdet(_t(SPD)), jitgrad.svd(_t(A33)), LA.inv_ex(_t(SPD)), LA.eigh(_t(SPD))):
        back = pickle.loads(pickle.dumps(r))
        assert type(back) is type(r) and back._fields == r._fields
        for a, b in zip(r, back):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert repr(LA.slogdet(_t(SPD))).startswith("jitgrad.return_types.linalg_slogdet(\nsign=tensor(1.")


def test_matrix_exp_of_a_rotation_generator():
    """exp(t [[0, -1], [1, 0]]) is the rotation by t; d/dt of <exp(tK), W> is <K exp(tK), W>."""
    t = 0.7
    K = np.array([[0.0, -1.0], [1.0, 0.0]])
    x = _t(t * K, grad=True)
    R = LA.matrix_exp(x)
    np.testing.assert_allclose(R.detach().numpy(), [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]], atol=1e-14)
    W = np.array([[0.2, -1.0], [0.5, 3.0]])
    (R * _t(W)).sum().backward()
    # the directional derivative along K equals <K exp(tK), W>
    np.testing.assert_allclose((x.grad.numpy() * K).sum(), (K @ R.detach().numpy() * W).sum(), rtol=1e-12)
    np.testing.assert_allclose(_t(np.zeros((2, 3, 3))).matrix_exp().numpy(), np.broadcast_to(np.eye(3), (2, 3, 3)))
    with pytest.raises(RuntimeError, match="linalg.matrix_exp: A must be batches of square matrices, but they are "
                                           "2 by 3 matrices"):
        LA.matrix_exp(_t(np.ones((2, 3))))


def test_matrix_norm_of_an_empty_matrix():
    """Found by a differential fuzz: the largest-norm orders of an empty matrix are 0, as PyTorch's;
    the smallest raise PyTorch's IndexError naming the dim as it was given."""
    for shape in ((0, 0), (0, 3), (3, 0), (2, 0, 0)):
        for ord in ("fro", "nuc", 1, 2, math.inf):
            got = jitgrad.linalg.matrix_norm(jitgrad.zeros(*shape), ord=ord)
            assert got.shape == shape[:-2] and not got.numpy().any()
    with pytest.raises(IndexError, match=r"amin\(\): Expected reduction dim -1 to have non-zero size"):
        jitgrad.linalg.matrix_norm(jitgrad.zeros(0, 3), ord=-2)


def test_non_finite_matrices_never_reach_lapack_svd():
    """Found by a differential fuzz: numpy's gesdd/gelsd loop forever on a matrix holding inf. As
    PyTorch's CPU kernels: inf gives nan results, nan raises linalg.svd's error."""
    a = np.eye(3)
    a[1, 0] = np.inf
    both = jitgrad.tensor(np.stack([a, np.eye(3)]))
    for fn in (lambda t: LA.svd(t).S, LA.svdvals, LA.pinv, lambda t: LA.lstsq(t, t).solution,
               LA.cond, lambda t: LA.matrix_norm(t, "nuc"), lambda t: LA.matrix_norm(t, 2)):
        got = fn(both).numpy()
        assert np.isnan(got[0]).all() and np.isfinite(got[1]).all()
    assert LA.matrix_rank(both).tolist() == [0, 3]
    a[1, 0] = np.nan
    with pytest.raises(LA.LinAlgError, match=r"linalg.svd: \(Batch element 1\): The algorithm failed to "
                                            r"converge because the input matrix contained non-finite values."):
        LA.svd(jitgrad.tensor(np.stack([np.eye(3), a])))
