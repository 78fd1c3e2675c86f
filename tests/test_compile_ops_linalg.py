"""jitgrad.compile of steps built on torch.linalg's decompositions: each is replayed by the forward
kernels (fullgraph: an eager fallback would raise) and gives eager's values and gradients, also
for singular matrices (det's and slogdet's SVD paths); a replay meeting input eager raises on (a
singular or not positive-definite matrix, nan where eager's SVD refuses it) raises eager's error,
never a hang or garbage, and the next replay runs normally."""
import numpy as np
import pytest

import jitgrad
from jitgrad.linalg import LinAlgError

L = jitgrad.linalg
WELL = [[2.0, 0.3, -0.4], [0.1, 1.5, 0.2], [-0.3, 0.4, 1.8]]
SINGULAR = [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.5, -1.0, 2.0]]


def leaf(a, dtype=jitgrad.float64):
    return jitgrad.tensor(np.ascontiguousarray(a, float), dtype=dtype, requires_grad=True)


def replays(compiled):
    entries = list(compiled.traces.values())
    return len(entries) == 1 and not isinstance(entries[0], str)


def close(a, b, dtype=jitgrad.float64):
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == jitgrad.float64 else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a, b, equal_nan=True, **tol)


def solve_slogdet(A, B):
    X = L.solve(A, B)
    sign, logabs = L.slogdet(A)
    loss = (X * X).sum() + (sign * logabs).sum()
    loss.backward()
    return loss, X


def det_inv(A):
    d = L.det(A)
    loss = d.sum() + L.inv(A).sum()
    loss.backward()
    return loss, d


def triangular_cholesky(A, B):
    lo = L.cholesky(A @ A.mT + A.new_ones(A.shape) * 0.1)
    X = L.solve_triangular(lo, B, upper=False)
    loss = (X * X).sum() + lo.sum()
    loss.backward()
    return loss, X


def run(step, values, dtype):
    xs = [leaf(v, dtype) for v in values]
    outs = step(*xs)
    return [o.detach().numpy() for o in outs] + [x.grad.numpy() for x in xs]


@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("step,shapes", [(solve_slogdet, [(2, 3, 3), (2, 3, 2)]),
                                         (triangular_cholesky, [(3, 3), (3, 2)])],
                         ids=["solve_slogdet", "triangular_cholesky"])
def test_step_replays_and_matches_eager(step, shapes, dtype):
    rng = np.random.default_rng(0)
    compiled = jitgrad.compile(step, fullgraph=True)
    for _ in range(3):
        values = [rng.standard_normal(s) + (2 * np.eye(s[-1]) if k == 0 else 0) for k, s in enumerate(shapes)]
        for got, want in zip(run(compiled, values, dtype), run(step, values, dtype)):
            close(got, want, dtype)
    assert replays(compiled)


@pytest.mark.parametrize("a", [SINGULAR, [WELL, SINGULAR], [[0.0] * 3] * 3],
                         ids=["singular", "batch", "zero"])
def test_singular_det_slogdet_replay_as_eager(a):
    """det's cofactors and slogdet's A^-T go through the SVD (a pseudo-inverse) where det is 0."""
    def step(A):
        d = L.det(A)
        sign, logabs = L.slogdet(A)
        loss = d.sum() + (sign * logabs.clamp(min=-50)).sum()
        loss.backward()
        return loss, d, sign, logabs
    compiled = jitgrad.compile(step, fullgraph=True)
    compiled(leaf(np.broadcast_to(WELL, np.shape(a))))
    for got, want in zip(run(compiled, [a], jitgrad.float64), run(step, [a], jitgrad.float64)):
        close(got, want)
    assert replays(compiled)


def inv_step(A):
    out = L.inv(A)
    loss = out.sum()
    loss.backward()
    return loss, out


def solve_step(A):
    out = L.solve(A, A.new_ones(A.shape[:-1]))
    loss = out.sum()
    loss.backward()
    return loss, out


def cholesky_step(A):
    out = L.cholesky(A)
    loss = out.sum()
    loss.backward()
    return loss, out


def det_step(A):
    out = L.det(A)
    loss = out.sum()
    loss.backward()
    return loss, out


NAN = [[1.0, 0.0, 0.0], [np.nan, 2.0, 0.0], [0.0, 0.0, 1.0]]


@pytest.mark.parametrize("step,bad", [
    (inv_step, SINGULAR), (inv_step, [WELL, SINGULAR]), (solve_step, SINGULAR),
    (solve_step, [WELL, WELL, SINGULAR]), (cholesky_step, [[1.0, 0.0], [0.0, -1.0]]),
    (cholesky_step, [[[1.0, 0.0], [0.0, 1.0]], [[4.0, 2.0], [2.0, 1.0]]]), (det_step, NAN)],
    ids=["inv", "inv_batch", "solve", "solve_batch", "cholesky", "cholesky_batch", "det_nan"])
def test_replay_raises_eager_error(step, bad):
    good = np.broadcast_to(np.eye(np.shape(bad)[-1]) * 2, np.shape(bad))
    compiled = jitgrad.compile(step, fullgraph=True)
    compiled(leaf(good))
    with pytest.raises(LinAlgError) as eager:
        step(leaf(bad))
    with pytest.raises(LinAlgError) as replayed:
        compiled(leaf(bad))
    assert str(replayed.value) == str(eager.value)
    assert replays(compiled)
    again = good * 1.5
    for got, want in zip(run(compiled, [again], jitgrad.float64), run(step, [again], jitgrad.float64)):
        close(got, want)


@pytest.mark.parametrize("step", [inv_step, solve_step, det_inv, solve_slogdet, cholesky_step],
                         ids=["inv", "solve", "det_inv", "solve_slogdet", "cholesky"])
@pytest.mark.parametrize("fill", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_replay_gives_nan(step, fill):
    """A matrix holding inf or nan never reaches LAPACK (it may loop forever on one): the replay
    gives nan where eager's LAPACK gives nan, and raises eager's error where eager raises."""
    n_args = 2 if step is solve_slogdet else 1
    good = [np.eye(3) * 2, np.ones((3, 2))][:n_args]
    bad = [np.array(WELL)] + good[1:]
    bad[0][1, 0] = fill
    compiled = jitgrad.compile(step, fullgraph=True)
    compiled(*[leaf(v) for v in good])
    try:
        want = run(step, bad, jitgrad.float64)
    except LinAlgError as e:
        with pytest.raises(LinAlgError) as replayed:
            compiled(*[leaf(v) for v in bad])
        assert str(replayed.value) == str(e)
        return
    got = run(compiled, bad, jitgrad.float64)
    for g, w in zip(got, want):      # eager's non-finite values are nan, its finite ones equal or nan
        assert g.shape == w.shape
        assert np.isnan(g[~np.isfinite(w)]).all()
        finite = np.isfinite(g)
        close(g[finite], w[finite])
    assert replays(compiled)


def eigh_svd_qr(A):
    lam, V = L.eigh(A + A.mT)
    U, S, Vh = L.svd(A, full_matrices=False)
    Q, R = L.qr(A)
    loss = (lam * lam).sum() + V[..., 0].sum() + U.sum() + S.sum() + Vh.sum() + Q.sum() + R.sum()
    loss.backward()
    return loss, lam, V, U, S, Vh, Q, R


def pinvs(A):
    P = L.pinv(A)
    H = L.pinv(A @ A.mT, hermitian=True)
    C = L.pinv(A, rtol=0.3)
    loss = (P * P).sum() + H.sum() + C.sum()
    loss.backward()
    return loss, P, H, C


@pytest.mark.parametrize("step,shape", [(eigh_svd_qr, (2, 4, 4)), (eigh_svd_qr, (3, 3)), (pinvs, (2, 3, 4)),
                                        (pinvs, (4, 3))], ids=["eigh_svd_qr", "eigh_svd_qr_2d", "pinv", "pinv_2d"])
def test_factorisations_replay_bit_for_bit(step, shape):
    """numba's float64 LAPACK gives numpy's factors exactly, vectors' signs included (the sample
    cases compare eigh's and svd's vectors through abs())."""
    rng = np.random.default_rng(1)
    compiled = jitgrad.compile(step, fullgraph=True)
    for _ in range(4):
        a = rng.standard_normal(shape)
        for got, want in zip(run(compiled, [a], jitgrad.float64), run(step, [a], jitgrad.float64)):
            close(got, want)
    assert replays(compiled)


def test_float32_or_upper_eigh_runs_eagerly():
    """numba's float32 LAPACK and eigh's UPLO='U' do not give numpy's vectors' signs: eager."""
    def upper(A):
        lam, V = L.eigh(A, "U")
        loss = V.sum() + lam.sum()
        loss.backward()
        return loss
    for step, dtype in ((upper, jitgrad.float64), (eigh_svd_qr, jitgrad.float32)):
        compiled = jitgrad.compile(step)
        with pytest.warns(UserWarning, match="float64"):
            compiled(leaf(np.eye(3) * 2, dtype))
        assert not replays(compiled)


@pytest.mark.parametrize("fill", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_svd_pinv_replay_as_eager(fill):
    """gesdd never sees inf or nan: nan raises eager's error, inf gives nan factors, as eagerly."""
    def step(A):
        U, S, Vh = L.svd(A)
        P = L.pinv(A)
        loss = U.sum() + S.sum() + Vh.sum() + P.sum()
        loss.backward()
        return loss, U, S, Vh, P
    compiled = jitgrad.compile(step, fullgraph=True)
    compiled(leaf(np.ones((2, 3, 3)) + np.eye(3)))
    bad = np.ones((2, 3, 3)) + np.eye(3)
    bad[1, 0, 2] = fill
    try:
        want = run(step, [bad], jitgrad.float64)
    except LinAlgError as e:
        with pytest.raises(LinAlgError) as replayed:
            compiled(leaf(bad))
        assert str(replayed.value) == str(e)
        assert fill != fill
        return
    for got, w in zip(run(compiled, [bad], jitgrad.float64), want):
        close(got, w)


def lstsq_step(A, B):
    X = L.lstsq(A, B).solution
    loss = (X * X).sum()
    loss.backward()
    return loss, X


@pytest.mark.parametrize("shapes", [[(5, 3), (5, 2)], [(2, 3, 4), (2, 3)]], ids=["tall", "wide_vectors"])
def test_lstsq_replays_and_nan_raises_as_eager(shapes):
    rng = np.random.default_rng(2)
    compiled = jitgrad.compile(lstsq_step, fullgraph=True)
    for _ in range(3):
        values = [rng.standard_normal(s) for s in shapes]
        for got, want in zip(run(compiled, values, jitgrad.float64), run(lstsq_step, values, jitgrad.float64)):
            close(got, want)
    assert replays(compiled)
    values[0][..., 0, 1] = np.nan
    with pytest.raises(LinAlgError) as eager:
        run(lstsq_step, values, jitgrad.float64)
    with pytest.raises(LinAlgError) as replayed:
        run(compiled, values, jitgrad.float64)
    assert str(replayed.value) == str(eager.value)
