"""torch.linalg's matrix functions and decompositions: inv, det, slogdet, solve, solve_triangular,
cholesky, qr, eigh, svd, svdvals, pinv, lstsq, matrix_exp (jitgrad/linalg.py names them; norms are
compositions there).

Forwards run numpy.linalg (scipy's BLAS for trsm) on batches of matrices (inputs (*, m, n) fold
their batch into one dim) and save what the backward needs, inverses included, so the VJP kernels
(one per family) are matrix products and loops alone. A decomposition with several outputs
records one row per output (each row's gradient is the op's VJP with the other outputs'
gradients zero; their sum is the VJP). The formulas follow derivatives.yaml and recompute a decomposition from the input in jitgrad
ops when they need more than their own output, so create_graph differentiates them again.
"""
import builtins
import collections
import math

import numpy as np

from .. import dtypes
from ..engine import hook
from ..engine.registry import defop
from ..engine.replay import P_C, P_I0, P_K, needs
from ..tensor import Tensor, _wrap
from ._core import _arr, _broadcast_shape, _needs_grad, quiet, record, torch_names
from ._samples import Given, samples
from .elementwise import where
from .indexing import narrow
from .shape import cat, expand, stack


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: a singular or not positive-definite matrix."""


# what the kernel computes (iv[0])
_ZERO, _SCALE, _INV, _SOLVE, _CHOLESKY, _EIGH_L, _EIGH_V, _SVD_S, _SVD_U, _SVD_V, _QR, _PINV, \
    _LSTSQ = range(13)


# The VJP kernels, one per family (each compiles on first use). Every product is np.dot of two
# C-ordered arrays (transposes are copied) and every sum an explicit loop: fewer Numba instantiations.
def _linalg_inv_det(go, ga, gb, sv, iv, do, da, db, row):
    # iv = [what, bt, m, n, ...] (see _ints): what 0, a row without gradient (slogdet's sign,
    # lstsq's residuals); 1, det and logabsdet: g * S (saved S); 2, inv: -X^T G X^T (saved X = out)
    what = iv[0]
    bt = iv[1]
    n = iv[3]
    if what == 0 or go.size == 0:
        return
    nn = n * n
    for b in range(bt):
        if what == 1:
            gs = go[b]
            for j in range(nn):
                ga[b * nn + j] += gs * sv[b * nn + j]
        else:
            xt = sv[b * nn: (b + 1) * nn].reshape((n, n)).T.copy()
            g = go[b * nn: (b + 1) * nn].reshape((n, n))
            flat = np.dot(xt, np.dot(g, xt)).reshape(-1)
            for j in range(nn):
                ga[b * nn + j] -= flat[j]


def _linalg_solve(go, ga, gb, sv, iv, do, da, db, row):
    # solve AX = B: gB = A^-T G, gA = -gB X^T (X (n, p)); q: XA = B, gB = G A^-T, gA = -X^T gB
    # (X (p, n)). Saved A^-1, X. tri (solve_triangular) keeps gA to A's triangle: 1 lower,
    # 2 upper, +4 unit diagonal
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    p = iv[4]
    q = iv[5]
    tri = iv[6]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        ainvt = sv[b * mn: (b + 1) * mn].reshape((n, n)).T.copy()
        x = sv[bt * mn + b * n * p: bt * mn + (b + 1) * n * p]
        g = go[b * n * p: (b + 1) * n * p]
        if q:
            gbm = np.dot(g.reshape((p, n)), ainvt)
        else:
            gbm = np.dot(ainvt, g.reshape((n, p)))
        if gb.size:
            flat = gbm.reshape(-1)
            for j in range(n * p):
                gb[b * n * p + j] += flat[j]
        if ga.size == 0:
            continue
        if q:
            r = np.dot(x.reshape((p, n)).T.copy(), gbm)
        else:
            r = np.dot(gbm, x.reshape((n, p)).T.copy())
        if tri:
            for i in range(n):
                for j in range(n):
                    if (i == j and tri & 4) or (i < j and tri & 1) or (i > j and tri & 2):
                        r[i, j] = 0
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] -= flat[j]


def _linalg_cholesky(go, ga, gb, sv, iv, do, da, db, row):
    # L^-T P L^-1, P = tril(L^T G) with its strict lower half mirrored and everything halved;
    # saved L, L^-1; p = upper (out = L^T)
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    p = iv[4]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        lt = sv[b * mn: (b + 1) * mn].reshape((n, n)).T.copy()
        linv = sv[bt * mn + b * mn: bt * mn + (b + 1) * mn].reshape((n, n))
        g = go[b * mn: (b + 1) * mn].reshape((n, n))
        mm = np.dot(lt, g.T.copy() if p else g.copy())
        pm = np.zeros((n, n), go.dtype)
        for i in range(n):
            for j in range(i + 1):
                pm[i, j] += 0.5 * mm[i, j]
                if j < i:
                    pm[j, i] += 0.5 * mm[i, j]
        r = np.dot(linv.T.copy(), np.dot(pm, linv))
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] += flat[j]


def _linalg_eigh(go, ga, gb, sv, iv, do, da, db, row):
    # what 5, eigenvalues: V diag(g) V^T (saved V); 6, eigenvectors: V (skew(V^T G) / E) V^T,
    # E_ij = L_j - L_i (saved L (n,), V)
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    what = iv[0]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        off = 0 if what == 5 else bt * n
        v = sv[off + b * mn: off + (b + 1) * mn].reshape((n, n))
        vt = v.T.copy()
        f = np.zeros((n, n), go.dtype)
        if what == 5:
            for j in range(n):
                f[j, j] = go[b * n + j]
        else:
            x = np.dot(vt, go[b * mn: (b + 1) * mn].reshape((n, n)))
            for i in range(n):
                for j in range(n):
                    if i != j:
                        f[i, j] = 0.5 * (x[i, j] - x[j, i]) / (sv[b * n + j] - sv[b * n + i])
        r = np.dot(v, np.dot(f, vt))
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] += flat[j]


def _linalg_svd(go, ga, gb, sv, iv, do, da, db, row):
    # k = p singular values; saved U (m, k), Vh (k, n), S. what 7: S, 8: U (m, q), 9: Vh (q, n)
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    what = iv[0]
    p = iv[4]
    q = iv[5]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        k = p
        u = sv[b * m * k: (b + 1) * m * k].reshape((m, k))
        vh = sv[bt * m * k + b * k * n: bt * m * k + (b + 1) * k * n].reshape((k, n))
        s = sv[bt * (m * k + k * n) + b * k: bt * (m * k + k * n) + (b + 1) * k]
        f = np.zeros((k, k), go.dtype)
        if what == 7:       # singular values: U diag(g) Vh
            for j in range(k):
                f[j, j] = go[b * k + j]
            r = np.dot(u, np.dot(f, vh))
        elif what == 8:     # U (m, q), its first k columns: U (skew(U^T G) S_j / E) Vh
            # + (I - U U^T) G S^-1 Vh, E_ij = S_j^2 - S_i^2, skew(X) = X - X^T
            g = go[b * m * q: (b + 1) * m * q].reshape((m, q))[:, :k].copy()
            x = np.dot(u.T.copy(), g)
            for i in range(k):
                for j in range(k):
                    if i != j:
                        f[i, j] = (x[i, j] - x[j, i]) * s[j] / (s[j] * s[j] - s[i] * s[i])
            t = np.dot(u, f)
            if m > k:
                ux = np.dot(u, x)
                for i in range(m):
                    for j in range(k):
                        t[i, j] += (g[i, j] - ux[i, j]) / s[j]
            r = np.dot(t, vh)
        else:               # Vh (q, n), its first k rows: U (S_i skew(Vh G^T) / E) Vh
            # + U S^-1 (G - G Vh^T Vh)
            g = go[b * q * n: (b + 1) * q * n].reshape((q, n))[:k, :].copy()
            x = np.dot(vh, g.T.copy())
            for i in range(k):
                for j in range(k):
                    if i != j:
                        f[i, j] = s[i] * (x[i, j] - x[j, i]) / (s[j] * s[j] - s[i] * s[i])
            t = np.dot(f, vh)
            if n > k:
                xv = np.dot(x.T.copy(), vh)
                for i in range(k):
                    for j in range(n):
                        t[i, j] += (g[i, j] - xv[i, j]) / s[i]
            r = np.dot(u, t)
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] += flat[j]


def _linalg_qr(go, ga, gb, sv, iv, do, da, db, row):
    # one row per output, the other's gradient zero: with c = p = min(m, n), A = [X | Y],
    # R = [U | V] (X, U: c columns), q: 0 for the Q row, 1 for R's; gX = (gQ' + Q copyltu(M)) U^-T,
    # M = U gU^T - gQ'^T Q, gQ' = gQ + Q V gV^T, gY = Q gV. Saved Q (m, c), R (c, n), U^-1 (c, c)
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    p = iv[4]
    q = iv[5]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        c = p
        qm = sv[b * m * c: (b + 1) * m * c].reshape((m, c))
        rm = sv[bt * m * c + b * c * n: bt * m * c + (b + 1) * c * n].reshape((c, n))
        uinv = sv[bt * (m * c + c * n) + b * c * c: bt * (m * c + c * n) + (b + 1) * c * c
                  ].reshape((c, c))
        if q:
            gq = np.zeros((m, c), go.dtype)
            gr = go[b * c * n: (b + 1) * c * n].reshape((c, n))
        else:
            gq = go[b * m * c: (b + 1) * m * c].reshape((m, c)).copy()
            gr = np.zeros((c, n), go.dtype)
        r = np.zeros((m, n), go.dtype)
        if n > c:
            gv = gr[:, c:].copy()
            gy = np.dot(qm, gv)
            extra = np.dot(qm, np.dot(rm[:, c:].copy(), gv.T.copy()))
            for i in range(m):
                for j in range(c):
                    gq[i, j] += extra[i, j]
                for j in range(n - c):
                    r[i, c + j] = gy[i, j]
        mm = np.dot(rm[:, :c].copy(), gr[:, :c].T.copy())
        qg = np.dot(gq.T.copy(), qm)
        for i in range(c):
            for j in range(c):
                mm[i, j] -= qg[i, j]
        for i in range(c):
            for j in range(i + 1, c):
                mm[i, j] = mm[j, i]
        t = np.dot(qm, mm)
        for i in range(m):
            for j in range(c):
                t[i, j] += gq[i, j]
        gx = np.dot(t, uinv.T.copy())
        for i in range(m):
            for j in range(c):
                r[i, j] = gx[i, j]
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] += flat[j]


def _linalg_pinv(go, ga, gb, sv, iv, do, da, db, row):
    # what 11, pinv (out P (n, m)), 12, lstsq (X = P B): saved P, A (m, n), and for lstsq B (m, q);
    # pinv's VJP at G (lstsq: G B^T) as derivatives.yaml's pinv_backward:
    # -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)
    bt = iv[1]
    m = iv[2]
    n = iv[3]
    what = iv[0]
    q = iv[5]
    if go.size == 0:
        return
    mn = m * n
    for b in range(bt):
        pv = sv[b * mn: (b + 1) * mn].reshape((n, m))
        av = sv[bt * mn + b * mn: bt * mn + (b + 1) * mn].reshape((m, n))
        pt = pv.T.copy()
        if what == 12:
            bv = sv[2 * bt * mn + b * m * q: 2 * bt * mn + (b + 1) * m * q].reshape((m, q))
            gx = go[b * n * q: (b + 1) * n * q].reshape((n, q))
            if gb.size:
                flat = np.dot(pt, gx).reshape(-1)
                for j in range(m * q):
                    gb[b * m * q + j] += flat[j]
            if ga.size == 0:
                continue
            g = np.dot(gx, bv.T.copy())
        else:
            g = go[b * mn: (b + 1) * mn].reshape((n, m)).copy()
        gt = g.T.copy()
        w1 = np.dot(av, np.dot(pv, gt))
        w2 = np.dot(gt, np.dot(pv, av))
        for i in range(m):
            for j in range(n):
                w1[i, j] = gt[i, j] - w1[i, j]
                w2[i, j] = gt[i, j] - w2[i, j]
        r = np.dot(w1, np.dot(pv, pt))
        t3 = np.dot(np.dot(pt, pv), w2)
        t1 = np.dot(pt, np.dot(g, pt))
        for i in range(m):
            for j in range(n):
                r[i, j] += t3[i, j] - t1[i, j]
        flat = r.reshape(-1)
        for j in range(mn):
            ga[b * mn + j] += flat[j]


def _linalg_matrix_exp(go, ga, gb, sv, iv, do, da, db, row):
    # gA = L(A^T, G), the Frechet derivative of exp at A^T applied to G: the upper right block of
    # exp([[A^T, G], [0, A^T]]), by scaling and squaring with the [13/13] Pade approximant (Higham
    # 2005, as scipy's expm); saved A
    bt = iv[1]
    n = iv[3]
    if go.size == 0:
        return
    nn = n * n
    k = 2 * n
    c = np.array([64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
                  129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0,
                  40840800.0, 960960.0, 16380.0, 182.0, 1.0])
    for b in range(bt):
        m = np.zeros((k, k), go.dtype)
        for i in range(n):
            for j in range(n):
                m[i, j] = sv[b * nn + j * n + i]
                m[n + i, n + j] = sv[b * nn + j * n + i]
                m[i, n + j] = go[b * nn + i * n + j]
        norm = 0.0
        for j in range(k):
            col = 0.0
            for i in range(k):
                col += abs(m[i, j])
            if col > norm:
                norm = col
        squarings = 0
        while norm > 5.371920351148152:
            norm /= 2
            squarings += 1
        scale = 0.5 ** squarings
        for i in range(k):
            for j in range(k):
                m[i, j] *= scale
        m2 = np.dot(m, m)
        m4 = np.dot(m2, m2)
        m6 = np.dot(m2, m4)
        w1 = np.zeros((k, k), go.dtype)
        w2 = np.zeros((k, k), go.dtype)
        z1 = np.zeros((k, k), go.dtype)
        z2 = np.zeros((k, k), go.dtype)
        for i in range(k):
            for j in range(k):
                w1[i, j] = c[13] * m6[i, j] + c[11] * m4[i, j] + c[9] * m2[i, j]
                w2[i, j] = c[7] * m6[i, j] + c[5] * m4[i, j] + c[3] * m2[i, j]
                z1[i, j] = c[12] * m6[i, j] + c[10] * m4[i, j] + c[8] * m2[i, j]
                z2[i, j] = c[6] * m6[i, j] + c[4] * m4[i, j] + c[2] * m2[i, j]
            w2[i, i] += c[1]
            z2[i, i] += c[0]
        w = np.dot(m6, w1)
        v = np.dot(m6, z1)
        for i in range(k):
            for j in range(k):
                w[i, j] += w2[i, j]
                v[i, j] += z2[i, j]
        u = np.dot(m, w)
        p = np.zeros((k, k), go.dtype)
        q = np.zeros((k, k), go.dtype)
        for i in range(k):
            for j in range(k):
                p[i, j] = v[i, j] + u[i, j]
                q[i, j] = v[i, j] - u[i, j]
        # r = q^-1 p by Gaussian elimination with partial pivoting, in place (np.linalg.solve
        # would cost seconds of Numba compile)
        for col in range(k):
            piv = col
            for i in range(col + 1, k):
                if abs(q[i, col]) > abs(q[piv, col]):
                    piv = i
            if piv != col:
                for j in range(k):
                    tq = q[col, j]
                    q[col, j] = q[piv, j]
                    q[piv, j] = tq
                    tp = p[col, j]
                    p[col, j] = p[piv, j]
                    p[piv, j] = tp
            for i in range(col + 1, k):
                f = q[i, col] / q[col, col]
                if f != 0:
                    for j in range(col, k):
                        q[i, j] -= f * q[col, j]
                    for j in range(k):
                        p[i, j] -= f * p[col, j]
        for col in range(k - 1, -1, -1):
            for j in range(k):
                acc = p[col, j]
                for i in range(col + 1, k):
                    acc -= q[col, i] * p[i, j]
                p[col, j] = acc / q[col, col]
        r = p
        for _ in range(squarings):
            r = np.dot(r, r)
        for i in range(n):
            for j in range(n):
                ga[b * nn + i * n + j] += r[i, n + j]


class linalg_return_types:
    """The named-tuple results of jitgrad.linalg, by torch's names (pickle finds them here)."""


def _result_type(name, fields):
    """A named tuple printed as torch.return_types.<name> is."""
    base = collections.namedtuple(name, fields)

    def __repr__(self):
        body = ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self))
        return f"jitgrad.return_types.{name}(\n{body})"
    cls = type(name, (base,), {"__slots__": (), "__repr__": __repr__, "__module__": __name__})
    cls.__qualname__ = f"linalg_return_types.{name}"
    setattr(linalg_return_types, name, cls)
    return cls


slogdet_result = _result_type("linalg_slogdet", ("sign", "logabsdet"))
qr_result = _result_type("linalg_qr", ("Q", "R"))
eigh_result = _result_type("linalg_eigh", ("eigenvalues", "eigenvectors"))
svd_result = _result_type("linalg_svd", ("U", "S", "Vh"))
lstsq_result = _result_type("linalg_lstsq", ("solution", "residuals", "rank", "singular_values"))


def _matrices(fname, A, square=True):
    """A's values, checked as torch.linalg checks a batch of matrices."""
    if not isinstance(A, Tensor):
        raise TypeError(f"{fname}(): argument 'A' (position 1) must be Tensor, not {type(A).__name__}")
    a = A._a
    if a.ndim < 2:
        raise RuntimeError(f"{fname}: The input tensor A must have at least 2 dimensions.")
    if a.dtype.kind != "f":
        raise RuntimeError(f"{fname}: Expected a floating point or complex tensor as input. "
                           f"Got {A.dtype.tensor_type[:-6]}")
    if square and a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{fname}: A must be batches of square matrices, but they are "
                           f"{a.shape[-2]} by {a.shape[-1]} matrices")
    if a.dtype == np.float16:       # numpy.linalg has no float16 either; torch's words per op
        if fname in ("linalg.inv", "linalg.slogdet"):
            raise RuntimeError(f"{fname}: Low precision dtypes not supported. Got Half")
        if fname == "torch.linalg.lstsq":
            raise RuntimeError("This function doesn't handle types other than float and double")
        raise NotImplementedError(f'"{_HALF_KERNELS[fname]}" not implemented for \'Half\'')
    return a


_HALF_KERNELS = {"linalg.det": "lu_cpu", "linalg.solve": "lu_cpu", "linalg.solve_triangular": "triangular_solve_cpu",
                 "linalg.cholesky": "cholesky_cpu", "linalg.eigh": "linalg_eigh_cpu", "linalg.qr": "geqrf_cpu",
                 "linalg.svd": "linalg_svd_cpu", "linalg.svdvals": "linalg_svd_cpu",
                 "linalg.matrix_exp": "linalg_matrix_exp"}


def _batch(a):
    """a (*, m, n) as (bt, m, n), and bt."""
    bt = builtins.int(math.prod(a.shape[:-2]))
    return a.reshape((bt,) + a.shape[-2:]), bt


def _lapack_failure(fname, a, routine, message):
    """Raise LinAlgError as torch words it, from the first matrix LAPACK's routine ('getrf':
    singular, 'potrf': not positive-definite) fails on; its info is the failing index."""
    from scipy.linalg import lapack
    a3, _ = _batch(a)
    for b in range(a3.shape[0]):
        if routine == "getrf":
            info = lapack.get_lapack_funcs("getrf", (a3[b],))(a3[b])[-1]
        else:
            info = lapack.get_lapack_funcs("potrf", (a3[b],))(a3[b], lower=1)[-1]
        if info > 0:
            where = f"(Batch element {b}): " if a.ndim > 2 else ""
            raise LinAlgError(f"{fname}: {where}" + message.format(info))
    raise LinAlgError(f"{fname}: " + message.format(1))


def _numpy_svd(a, **kw):
    """np.linalg.svd, its failure to converge raised as torch words it. As PyTorch's CPU kernel, a
    matrix holding nan raises and one holding inf gives nan factors; LAPACK's gesdd, as numpy
    calls it, can loop forever on either, so it never sees one."""
    finite = np.isfinite(a).all(axis=(-2, -1)) if a.size else np.ones(a.shape[:-2], bool)
    if not finite.all():
        nan = np.isnan(a).any(axis=(-2, -1)).reshape(-1)
        if nan.any():
            where = f"(Batch element {np.flatnonzero(nan)[0]}): " if a.ndim > 2 else ""
            raise LinAlgError(f"linalg.svd: {where}The algorithm failed to converge because the input "
                              "matrix contained non-finite values.")
        out = _numpy_svd(np.where(finite[..., None, None], a, 0), **kw)
        for part in (out,) if isinstance(out, np.ndarray) else out:
            part[~finite] = np.nan
        return out
    try:
        with quiet():
            return np.linalg.svd(a, **kw)
    except np.linalg.LinAlgError:
        why = ("contained non-finite values" if not np.isfinite(a).all() else
               "is ill-conditioned or has too many repeated singular values")
        raise LinAlgError(f"linalg.svd: The algorithm failed to converge because the input matrix {why}.") \
            from None


def _save(like, *arrays):
    return [np.ascontiguousarray(v, like.dtype) for v in arrays]


def _ints(what, bt, m, n, p=0, q=0, tri=0):
    return (what, bt, m, n, p, q, tri)


def _eye(n, like):
    return _wrap(np.eye(n, dtype=like.dtype))


def _col(t):
    """A batch of scalars as (*, 1, 1), to scale a batch of matrices."""
    return t.reshape(tuple(t.shape) + (1, 1))


# ---- inverse, determinants ----------------------------------------------------------------
# The forward kernels run numba's np.linalg (scipy's LAPACK) on each matrix of the batch, by the
# routines numpy's calls (gesv for an inverse, getrf for determinants, potrf, gesdd): equal to the
# eager forward up to rounding. LAPACK never sees inf or nan (gesdd can loop forever on them): such
# a matrix gives nan, or stops the replay where eager raises (the fails= of needs).
def _fwd_inv(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # out = A^-1 (gesv on the identity); saves out. A singular A stops the replay
    k = prog[j, P_K]
    bt = pints[k + 1]
    n = pints[k + 3]
    nn = n * n
    eye = np.zeros((n, n), out.dtype)
    for i in range(n):
        eye[i, i] = 1
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn]
        if not np.isfinite(a).all():
            out[b * nn: (b + 1) * nn] = np.nan
            continue
        try:
            r = np.linalg.solve(a.reshape((n, n)), eye)
        except Exception:       # (a zero pivot)
            pints[pints.size - 1] = j + 1
            return
        for p in range(n):
            for q in range(n):
                out[b * nn + p * n + q] = r[p, q]
    if s >= 0:
        sv[s: s + out.size] = out


_INV_SINGULAR = ("The diagonal element {} is zero, the inversion could not be completed because the input "
                 "matrix is singular.")
INV = defop("LinalgInvExBackward0", _linalg_inv_det,
            forward=needs(_fwd_inv, "x", fails=lambda x, y, i0, ints: _lapack_failure(
                "linalg.inv", x, "getrf", _INV_SINGULAR)),
            x=lambda g, out: -(out.mT @ g @ out.mT))


@torch_names("inverse")
def linalg_inv(A):
    a = _matrices("linalg.inv", A)
    n = a.shape[-1]
    try:
        with quiet():
            out = _arr(np.linalg.inv(a) if a.size else a.copy())
    except np.linalg.LinAlgError:
        _lapack_failure("linalg.inv", a, "getrf", _INV_SINGULAR)
    if not _needs_grad(A):
        return _wrap(out)
    _, bt = _batch(a)
    return record(INV, out, A, saves=_save(out, out), ints=_ints(_INV, bt, n, n), broadcast=False)


def _cofactor(a3):
    """det(A) A^-T per matrix, through the SVD where A is singular (det is C^1 there too)."""
    with quiet():
        d = np.linalg.det(a3)
        regular = (d != 0) & np.isfinite(d)
        cof = np.empty_like(a3)
        if regular.any():
            cof[regular] = d[regular, None, None] * np.swapaxes(np.linalg.inv(a3[regular]), -1, -2)
        for b in np.flatnonzero(~regular):
            u, s, vh = _numpy_svd(a3[b])
            others = np.array([np.prod(np.delete(s, i)) for i in range(s.size)], a3.dtype)
            cof[b] = np.sign(np.linalg.det(u) * np.linalg.det(vh)) * (u * others) @ vh
    return cof


def _det_grad(g, x, out):
    """g det(A) A^-T; where some A is singular, the cofactors through the SVD for the whole batch,
    U diag(prod_{j != i} s_j) Vh det(U Vh), as derivatives.yaml's linalg_det_backward."""
    if (out._a != 0).all():
        return _col(g * out) * linalg_inv(x).mT
    u, s, vh = linalg_svd(x, full_matrices=False)
    n = s.shape[-1]
    others = stack([cat([narrow(s, -1, 0, i), narrow(s, -1, i + 1, n - i - 1)], -1).prod(-1)
                    for i in range(n)], -1)
    with quiet():       # a constant: +-1 (U, Vh orthogonal)
        sign = _wrap(np.sign(np.linalg.det(u._a) * np.linalg.det(vh._a)).astype(s._a.dtype))
    return _col(g * sign) * ((u * others.unsqueeze(-2)) @ vh)


def _fwd_det(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # det A = sign exp(log|det A|) from getrf, as numpy's; saves the cofactors det(A) A^-T, through
    # the SVD where det A is 0 or not finite (as _cofactor). A holding nan stops a recorded replay
    # (eager's SVD raises); inf gives nan
    k = prog[j, P_K]
    bt = pints[k + 1]
    n = pints[k + 3]
    nn = n * n
    eye = np.zeros((n, n), out.dtype)
    for i in range(n):
        eye[i, i] = 1
    others = np.empty(n, out.dtype)
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn].reshape((n, n))
        if not np.isfinite(a).all():
            if s >= 0 and np.isnan(a).any():
                pints[pints.size - 1] = j + 1
                return
            out[b] = np.nan
            if s >= 0:
                sv[s + b * nn: s + (b + 1) * nn] = np.nan
            continue
        sign, logabs = np.linalg.slogdet(a)
        out[b] = sign * np.exp(logabs)
        if s < 0:
            continue
        d = out[b]
        c = sv[s + b * nn: s + (b + 1) * nn]
        if d != 0 and np.isfinite(d):
            r = np.linalg.solve(a, eye)
            for p in range(n):
                for q in range(n):
                    c[p * n + q] = d * r[q, p]
            continue
        u, sing, vh = np.linalg.svd(a)
        sg = np.sign(np.linalg.det(u) * np.linalg.det(vh))
        for i in range(n):
            acc = out.dtype.type(1)
            for q in range(n):
                if q != i:
                    acc *= sing[q]
            others[i] = acc
        w = np.empty((n, n), out.dtype)
        for p in range(n):
            for i in range(n):
                w[p, i] = sg * (u[p, i] * others[i])
        r = np.dot(w, np.ascontiguousarray(vh))
        for p in range(n):
            for q in range(n):
                c[p * n + q] = r[p, q]


DET = defop("LinalgDetBackward0", _linalg_inv_det,
            forward=needs(_fwd_det, "x", fails=lambda x, y, i0, ints: _cofactor(_batch(x)[0])), x=_det_grad)


@torch_names("det")
def linalg_det(A):
    a = _matrices("linalg.det", A)
    with quiet():
        out = _arr(np.linalg.det(a).astype(a.dtype))
    if not _needs_grad(A):
        return _wrap(out)
    a3, bt = _batch(a)
    n = a.shape[-1]
    return record(DET, out, A, saves=_save(out, _cofactor(a3)), ints=_ints(_SCALE, bt, n, n),
                  broadcast=False)


def _fwd_slogdet(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # sign (int data's what 0) or log|det A| by getrf; the latter saves A^-T, pinv(A)^T where
    # det A is 0 (as the eager forward). A holding inf or nan gives nan
    k = prog[j, P_K]
    logabs_row = pints[k] != 0
    bt = pints[k + 1]
    n = pints[k + 3]
    nn = n * n
    eye = np.zeros((n, n), out.dtype)
    for i in range(n):
        eye[i, i] = 1
    sinv = np.empty(n, out.dtype)
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn].reshape((n, n))
        if not np.isfinite(a).all():
            out[b] = np.nan
            if s >= 0:
                sv[s + b * nn: s + (b + 1) * nn] = np.nan
            continue
        sign, logabs = np.linalg.slogdet(a)
        out[b] = logabs if logabs_row else sign
        if s < 0:
            continue
        c = sv[s + b * nn: s + (b + 1) * nn]
        if sign != 0:
            r = np.linalg.solve(a, eye)
            for p in range(n):
                for q in range(n):
                    c[p * n + q] = r[q, p]
            continue
        # _pinv's cutoff: singular values at most eps * n * the largest drop
        u, sing, vh = np.linalg.svd(a, False)
        eps = np.finfo(out.dtype).eps
        for i in range(n):
            sinv[i] = 1 / sing[i] if sing[i] > eps * n * sing[0] else 0
        w = np.empty((n, n), out.dtype)
        for p in range(n):
            for i in range(n):
                w[p, i] = vh[i, p] * sinv[i]
        r = np.dot(w, np.ascontiguousarray(u.T))
        for p in range(n):
            for q in range(n):
                c[p * n + q] = r[q, p]


SLOGDET_SIGN = defop("LinalgSlogdetBackward0", _linalg_inv_det, forward=needs(_fwd_slogdet, "x"),
                     x=lambda g: None)   # sign: no gradient
SLOGDET = defop("LinalgSlogdetBackward0", _linalg_inv_det, forward=needs(_fwd_slogdet, "x"),
                x=lambda g, x: _col(g) * linalg_inv(x).mT)


@torch_names("slogdet")
def linalg_slogdet(A):
    a = _matrices("linalg.slogdet", A)
    with quiet():
        sign, logabs = np.linalg.slogdet(a)
    sign, logabs = _arr(sign.astype(a.dtype)), _arr(logabs.astype(a.dtype))
    if not _needs_grad(A):
        return slogdet_result(_wrap(sign), _wrap(logabs))
    a3, bt = _batch(a)
    n = a.shape[-1]
    with quiet():
        inv_t = np.stack([_pinv(m).T if s == 0 else np.linalg.inv(m).T
                          for m, s in zip(a3, sign.reshape(-1))]) if bt else a3
    return slogdet_result(record(SLOGDET_SIGN, sign, A, ints=_ints(_ZERO, bt, n, n), broadcast=False),
                          record(SLOGDET, logabs, A, saves=_save(logabs, inv_t),
                                 ints=_ints(_SCALE, bt, n, n), broadcast=False))


@torch_names("logdet")
def logdet(A):
    """torch.logdet: log det A, nan where det A < 0 (a where over slogdet, as torch's)."""
    sign, logabs = linalg_slogdet(A)
    return where(_wrap(sign._a < 0), _wrap(np.array(np.nan, logabs._a.dtype)), logabs)


# ---- solve ----------------------------------------------------------------------------------
def _solve_b(g, x, node):
    return linalg_solve(x.mT, g, left=not node.i0 & 2)


def _solve_a(g, x, out, node):
    gb = _solve_b(g, x, node)
    if node.i0 & 2:
        return -(out.mT @ gb)
    return -(gb.unsqueeze(-1) * out.unsqueeze(-2) if node.i0 else gb @ out.mT)


def _fwd_solve(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # X = A^-1 B (gesv, numpy's solve), or X A = B (int data's q) solved as A^T X^T = B^T;
    # saves A^-1 (gesv on the identity), X. A holding inf or nan gives nan, B holding one
    # X = A^-1 B by a product; a singular A stops the replay
    k = prog[j, P_K]
    bt = pints[k + 1]
    n = pints[k + 3]
    p = pints[k + 4]
    right = pints[k + 5] != 0
    nn = n * n
    npp = n * p
    if npp == 0:
        return
    eye = np.zeros((n, n), out.dtype)
    for i in range(n):
        eye[i, i] = 1
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn].reshape((n, n))
        o = out[b * npp: (b + 1) * npp]
        rhs = y[b * npp: (b + 1) * npp]
        if not np.isfinite(a).all():
            o[:] = np.nan
            if s >= 0:
                sv[s + b * nn: s + (b + 1) * nn] = np.nan
            continue
        try:
            ainv = np.linalg.solve(a, eye)
            finite = np.isfinite(rhs).all()
            if finite and right:
                z = np.linalg.solve(np.ascontiguousarray(a.T), np.ascontiguousarray(rhs.reshape((p, n)).T))
                for i in range(n):
                    for q in range(p):
                        o[q * n + i] = z[i, q]
            elif finite:
                z = np.linalg.solve(a, rhs.reshape((n, p)))
                for i in range(n):
                    for q in range(p):
                        o[i * p + q] = z[i, q]
            elif right:
                o[:] = np.dot(rhs.reshape((p, n)), np.ascontiguousarray(ainv)).reshape(-1)
            else:
                o[:] = np.dot(np.ascontiguousarray(ainv), rhs.reshape((n, p))).reshape(-1)
        except Exception:       # (a zero pivot)
            pints[pints.size - 1] = j + 1
            return
        if s >= 0:
            c = sv[s + b * nn: s + (b + 1) * nn]
            for i in range(n):
                for q in range(n):
                    c[i * n + q] = ainv[i, q]
    if s >= 0:
        sv[s + bt * nn: s + bt * nn + out.size] = out


def _solve_failure(a):
    """Raise torch's error for the first singular matrix of a."""
    a3, _ = _batch(a)
    for k in range(a3.shape[0]):
        try:
            np.linalg.inv(a3[k])
        except np.linalg.LinAlgError:
            where_ = f"(Batch element {k}): " if a.ndim > 2 else ""
            raise LinAlgError(f"torch.linalg.solve: {where_}The solver failed because the input "
                              "matrix is singular.") from None


SOLVE = defop("LinalgSolveExBackward0", _linalg_solve, 2,
              forward=needs(_fwd_solve, "x,y", fails=lambda x, y, i0, ints: _solve_failure(x)),
              x=_solve_a, y=_solve_b)


def _vector_rhs(a, b):
    """torch's rule: B is a batch of vectors when it is 1-d or A's batch of vectors."""
    return b.ndim == 1 or (b.ndim == a.ndim - 1 and b.shape == a.shape[:-1])


def linalg_solve(A, B, *, left=True):
    """AX = B, or XA = B when not left; B is a batch of vectors by torch's rule (_vector_rhs)."""
    a = _matrices("linalg.solve", A)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg_solve(): argument 'B' (position 2) must be Tensor, not {type(B).__name__}")
    b = B._a
    if a.dtype != b.dtype:
        raise RuntimeError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                           f"{A.dtype.tensor_type[:-6]} and B of type {B.dtype.tensor_type[:-6]} instead")
    n = a.shape[-1]
    vector = _vector_rhs(a, b)
    bm = b[..., None] if vector else b
    if bm.shape[-2 if left else -1] != n:
        raise RuntimeError(f"linalg.solve: Incompatible shapes of A and B for the equation "
                           f"{'AX' if left else 'XA'} = B ({n}x{n} and {bm.shape[-2]}x{bm.shape[-1]})")
    batch = _broadcast_shape(bm.shape[:-2], a.shape[:-2])      # (torch's order in the error)
    if a.shape[:-2] != batch:
        A = expand(A, batch + a.shape[-2:])
        a = A._a
    if bm.shape[:-2] != batch:
        B = expand(B, batch + ((n,) if vector else bm.shape[-2:]))
        b = B._a
        bm = b[..., None] if vector else b
    p = bm.shape[-1 if left else -2]
    try:
        with quiet():
            if not (a.size and bm.size):
                xm = np.zeros(bm.shape, a.dtype)
            elif left:
                xm = np.linalg.solve(a, bm)
            else:
                xm = np.swapaxes(np.linalg.solve(np.swapaxes(a, -1, -2), np.swapaxes(bm, -1, -2)), -1, -2)
    except np.linalg.LinAlgError:
        _solve_failure(a)
        raise
    out = _arr(xm[..., 0] if vector else xm)
    if not _needs_grad(A, B):
        return _wrap(out)
    a3, bt = _batch(a)
    with quiet():
        ainv = np.linalg.inv(a3) if bt and n else a3
    return record(SOLVE, out, A, B, saves=_save(out, ainv, xm), ints=_ints(_SOLVE, bt, n, n, p, 1 - left),
                  i0=builtins.int(vector) | (2 - 2 * left), broadcast=False)


def _solve_triangular_b(g, x, node):
    upper, left, unit = node.i0 & 1, not node.i0 & 2, node.i0 & 4
    return linalg_solve_triangular(x.mT, g, upper=not upper, left=left, unitriangular=bool(unit))


def _solve_triangular_a(g, x, out, node):
    gb = _solve_triangular_b(g, x, node)
    ga = -(gb @ out.mT) if not node.i0 & 2 else -(out.mT @ gb)
    unit = 1 if node.i0 & 4 else 0
    return ga.triu(unit) if node.i0 & 1 else ga.tril(-unit)


def _fwd_solve_triangular(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # A X = B (int data's q: X A = B, i.e. A^T X^T = B^T) for the triangle of A that tri names
    # (1 lower, 2 upper, +4 unit diagonal), by substitution as BLAS's trsm (equal up to rounding;
    # no LAPACK: inf and nan propagate as arithmetic); saves the triangle's inverse (the same
    # substitution on the identity) and X
    k = prog[j, P_K]
    bt = pints[k + 1]
    n = pints[k + 3]
    p = pints[k + 4]
    right = pints[k + 5] != 0
    tri = pints[k + 6]
    nn = n * n
    npp = n * p
    z = np.empty(n, out.dtype)
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn]
        for inverse in range(2):
            if inverse and s < 0:
                break
            # the system T z = c, column by column: T = A (A^T when right: upper and lower swap)
            tr = right and not inverse
            upper = (tri & 2 != 0) != tr
            for c in range(n if inverse else p):
                for i in range(n):
                    if inverse:
                        z[i] = 1 if i == c else 0
                    else:
                        z[i] = y[b * npp + c * n + i] if tr else y[b * npp + i * p + c]
                for t in range(n):
                    i = n - 1 - t if upper else t
                    acc = z[i]
                    for q in range(i + 1 if upper else 0, n if upper else i):
                        acc -= (a[q * n + i] if tr else a[i * n + q]) * z[q]
                    z[i] = acc if tri & 4 else acc / a[i * n + i]
                for i in range(n):
                    if inverse:
                        sv[s + b * nn + i * n + c] = z[i]
                    elif tr:
                        out[b * npp + c * n + i] = z[i]
                    else:
                        out[b * npp + i * p + c] = z[i]
    if s >= 0:
        sv[s + bt * nn: s + bt * nn + out.size] = out


SOLVE_TRIANGULAR = defop("LinalgSolveTriangularBackward0", _linalg_solve, 2,
                         forward=needs(_fwd_solve_triangular, "x,y"), x=_solve_triangular_a,
                         y=_solve_triangular_b)


def linalg_solve_triangular(A, B, *, upper, left=True, unitriangular=False):
    """AX = B (XA = B when not left) for A triangular, as BLAS's trsm: only A's upper or lower
    triangle is read (and not its diagonal if unitriangular); a zero pivot gives inf/nan."""
    a = _matrices("linalg.solve_triangular", A)
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg_solve_triangular(): argument 'B' (position 2) must be Tensor, not "
                        f"{type(B).__name__}")
    if B._a.ndim < 2:
        raise RuntimeError("linalg.solve_triangular: The input tensor B must have at least 2 dimensions.")
    if B._a.dtype != a.dtype:
        A, B = (A, B.to(A.dtype)) if np.result_type(a, B._a) == a.dtype else (A.to(B.dtype), B)
        a = A._a
    b = B._a
    n = a.shape[-1]
    if b.shape[-2 if left else -1] != n:
        raise RuntimeError(f"linalg.solve_triangular: Incompatible shapes of A and B for the equation "
                           f"{'AX' if left else 'XA'} = B ({n}x{n} and {b.shape[-2]}x{b.shape[-1]})")
    batch = _broadcast_shape(b.shape[:-2], a.shape[:-2])
    if a.shape[:-2] != batch:
        A = expand(A, batch + a.shape[-2:])
        a = A._a
    if b.shape[:-2] != batch:
        B = expand(B, batch + b.shape[-2:])
        b = B._a
    from scipy.linalg import get_blas_funcs
    a3, bt = _batch(a)
    b3, _ = _batch(b)
    x3 = np.empty_like(b3)
    with quiet():
        for k in range(bt):
            if b3[k].size == 0:
                continue
            trsm = get_blas_funcs("trsm", (a3[k], b3[k]))
            x3[k] = trsm(1.0, a3[k], b3[k], side=builtins.int(not left), lower=builtins.int(not upper),
                         diag=builtins.int(unitriangular))
    out = _arr(x3.reshape(b.shape))
    if not _needs_grad(A, B):
        return _wrap(out)
    with quiet():      # the inverse of the triangle trsm read (its inf/nan where singular, as torch)
        tri3 = np.triu(a3) if upper else np.tril(a3)
        if unitriangular:
            tri3[:, np.arange(n), np.arange(n)] = 1
        eye = np.broadcast_to(np.eye(n, dtype=a.dtype), a3.shape)
        inv3 = np.stack([get_blas_funcs("trsm", (t,))(1.0, t, e, lower=builtins.int(not upper))
                         for t, e in zip(tri3, eye)]) if bt and n else tri3
    p = b.shape[-1] if left else b.shape[-2]
    tri = (2 if upper else 1) | (4 if unitriangular else 0)
    return record(SOLVE_TRIANGULAR, out, A, B, saves=_save(out, inv3, x3),
                  ints=_ints(_SOLVE, bt, n, n, p, builtins.int(not left), tri),
                  i0=builtins.int(upper) | (0 if left else 2) | (4 if unitriangular else 0), broadcast=False)


# ---- cholesky ---------------------------------------------------------------------------------
def _cholesky_grad(g, out, node):
    lo, gl = (out.mT, g.mT) if node.i0 else (out, g)
    p = (lo.mT @ gl).tril()
    p = 0.5 * (p + p.tril(-1).mT)
    linv = linalg_inv(lo)
    return linv.mT @ p @ linv


def _fwd_cholesky(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # A = L L^T from A's lower triangle (potrf, numpy's cholesky); out L, or L^T (int data's p);
    # saves L, L^-1 (gesv on the identity; nan for a non-finite L). A matrix not positive-definite
    # stops the replay
    k = prog[j, P_K]
    bt = pints[k + 1]
    n = pints[k + 3]
    upper = pints[k + 4] != 0
    nn = n * n
    eye = np.zeros((n, n), out.dtype)
    for i in range(n):
        eye[i, i] = 1
    for b in range(bt):
        a = x[b * nn: (b + 1) * nn].reshape((n, n))
        finite = True
        for p in range(n):
            for q in range(p + 1):
                if not np.isfinite(a[p, q]):
                    finite = False
        if finite:
            try:
                lo = np.linalg.cholesky(a)
            except Exception:
                pints[pints.size - 1] = j + 1
                return
        else:       # potf2 by hand, as OpenBLAS's (eager's): nan passes, a pivot <= 0 fails
            lo = np.zeros((n, n), out.dtype)
            for q in range(n):
                acc = a[q, q]
                for t in range(q):
                    acc -= lo[q, t] * lo[q, t]
                if acc <= 0:
                    pints[pints.size - 1] = j + 1
                    return
                d = np.sqrt(acc)
                lo[q, q] = d
                for p in range(q + 1, n):
                    acc = a[p, q]
                    for t in range(q):
                        acc -= lo[p, t] * lo[q, t]
                    lo[p, q] = acc / d
        for p in range(n):
            for q in range(n):
                out[b * nn + p * n + q] = lo[q, p] if upper else lo[p, q]
        if s >= 0:
            for p in range(n):
                for q in range(n):
                    sv[s + b * nn + p * n + q] = lo[p, q]
            if finite:
                linv = np.linalg.solve(lo, eye)
                for p in range(n):
                    for q in range(n):
                        sv[s + (bt + b) * nn + p * n + q] = linv[p, q]
            else:
                sv[s + (bt + b) * nn: s + (bt + b + 1) * nn] = np.nan


_NOT_PD = ("The factorization could not be completed because the input is not positive-definite (the leading "
           "minor of order {} is not positive-definite).")
CHOLESKY = defop("LinalgCholeskyExBackward0", _linalg_cholesky,
                 forward=needs(_fwd_cholesky, "x", fails=lambda x, y, i0, ints: _lapack_failure(
                     "linalg.cholesky", x, "potrf", _NOT_PD)),
                 x=_cholesky_grad)


def linalg_cholesky(A, *, upper=False):
    """Reads A's lower triangle, as LAPACK's potrf (and torch)."""
    a = _matrices("linalg.cholesky", A)
    try:
        with quiet():
            lo = np.linalg.cholesky(a) if a.size else a.copy()
    except np.linalg.LinAlgError:
        _lapack_failure("linalg.cholesky", a, "potrf", _NOT_PD)
    out = _arr(np.swapaxes(lo, -1, -2) if upper else lo)
    if not _needs_grad(A):
        return _wrap(out)
    l3, bt = _batch(lo)
    n = a.shape[-1]
    with quiet():
        linv = np.linalg.inv(l3) if bt and n else l3
    return record(CHOLESKY, out, A, saves=_save(out, l3, linv), ints=_ints(_CHOLESKY, bt, n, n, builtins.int(upper)),
                  i0=builtins.int(upper), broadcast=False)


# ---- eigh -------------------------------------------------------------------------------------
def _uplo(node):
    return "U" if node.i0 else "L"


def _eigh_values_grad(g, x, node):
    _, v = linalg_eigh(x, _uplo(node))
    return (v * g.unsqueeze(-2)) @ v.mT


def _eigh_vectors_grad(g, x, node):
    lam, v = linalg_eigh(x, _uplo(node))
    vg = v.mT @ g
    e = lam.unsqueeze(-2) - lam.unsqueeze(-1) + _eye(lam.shape[-1], lam._a)    # E_ij = L_j - L_i
    return v @ ((0.5 * (vg - vg.mT)) / e) @ v.mT


def _fwd_eigh(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # eigenvalues, ascending (int data's what 5), or eigenvectors (6) of A's lower triangle, by
    # syevd as numpy's; saves V (values), L then V (vectors). numba's float64 syevd gives numpy's
    # factors bit for bit, its float32 one and UPLO='U' (the upper triangle as A^T's lower) do
    # not, and the vectors' signs may then differ from eager's: the trace checks float64 and 'L'.
    # A lower triangle holding inf or nan gives nan
    k = prog[j, P_K]
    vectors = pints[k] == 6
    bt = pints[k + 1]
    n = pints[k + 3]
    nn = n * n
    low = np.zeros((n, n), out.dtype)
    at_v = s + bt * n if vectors else s
    for b in range(bt):
        finite = True
        for p in range(n):
            for q in range(p + 1):
                low[p, q] = x[b * nn + p * n + q]
                if not np.isfinite(low[p, q]):
                    finite = False
        if not finite:
            if vectors:
                out[b * nn: (b + 1) * nn] = np.nan
            else:
                out[b * n: (b + 1) * n] = np.nan
            if s >= 0:
                if vectors:
                    sv[s + b * n: s + (b + 1) * n] = np.nan
                sv[at_v + b * nn: at_v + (b + 1) * nn] = np.nan
            continue
        w, vec = np.linalg.eigh(low)
        for p in range(n):
            if vectors:
                for q in range(n):
                    out[b * nn + p * n + q] = vec[p, q]
            else:
                out[b * n + p] = w[p]
        if s >= 0:
            for p in range(n):
                if vectors:
                    sv[s + b * n + p] = w[p]
                for q in range(n):
                    sv[at_v + b * nn + p * n + q] = vec[p, q]


EIGH_L = defop("LinalgEighBackward0", _linalg_eigh, forward=needs(_fwd_eigh, "x,lower,f64"), x=_eigh_values_grad)
EIGH_V = defop("LinalgEighBackward0", _linalg_eigh, forward=needs(_fwd_eigh, "x,lower,f64"), x=_eigh_vectors_grad)


def linalg_eigh(A, UPLO="L"):
    """Reads the triangle UPLO names; eigenvalues ascending, as LAPACK's syevd."""
    a = _matrices("linalg.eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    try:
        with quiet():
            w, v = np.linalg.eigh(a, UPLO) if a.size else (np.zeros(a.shape[:-1], a.dtype), a.copy())
    except np.linalg.LinAlgError:
        bad = ~np.isfinite(np.tril(a) if UPLO == "L" else np.triu(a)).all(axis=(-2, -1)).reshape(-1)
        where = f"(Batch element {np.flatnonzero(bad)[0] if bad.any() else 0}): " if a.ndim > 2 else ""
        raise LinAlgError(f"linalg.eigh: {where}The algorithm failed to converge because the input matrix "
                          "is ill-conditioned or has too many repeated eigenvalues.") from None
    w, v = _arr(w), _arr(v)
    if not _needs_grad(A):
        return eigh_result(_wrap(w), _wrap(v))
    v3, bt = _batch(v)
    n = a.shape[-1]
    up = builtins.int(UPLO == "U")
    return eigh_result(record(EIGH_L, w, A, saves=_save(w, v3), ints=_ints(_EIGH_L, bt, n, n), i0=up,
                              broadcast=False),
                       record(EIGH_V, v, A, saves=_save(v, w, v3), ints=_ints(_EIGH_V, bt, n, n), i0=up,
                              broadcast=False))


def linalg_eigvalsh(A, UPLO="L"):
    return linalg_eigh(A, UPLO)[0]


# ---- svd --------------------------------------------------------------------------------------
def _svd_parts(x):
    u, s, vh = linalg_svd(x, full_matrices=False)
    k = s.shape[-1]
    s2 = s * s
    e = s2.unsqueeze(-2) - s2.unsqueeze(-1) + _eye(k, s._a)          # E_ij = S_j^2 - S_i^2
    return u, s, vh, k, e


def _svd_s_grad(g, x):
    u, _, vh, _, _ = _svd_parts(x)
    return (u * g.unsqueeze(-2)) @ vh


def _svd_u_grad(g, x):
    u, s, vh, k, e = _svd_parts(x)
    gu = narrow(g, -1, 0, k)
    ug = u.mT @ gu
    r = u @ ((ug - ug.mT) * s.unsqueeze(-2) / e) @ vh
    if x.shape[-2] > k:
        r = r + ((gu - u @ ug) / s.unsqueeze(-2)) @ vh
    return r


def _svd_v_grad(g, x):
    u, s, vh, k, e = _svd_parts(x)
    gvh = narrow(g, -2, 0, k)
    vg = vh @ gvh.mT
    r = u @ (s.unsqueeze(-1) * (vg - vg.mT) / e) @ vh
    if x.shape[-1] > k:
        r = r + u @ ((gvh - vg.mT @ vh) / s.unsqueeze(-1))
    return r


def _fwd_svd(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # U (int data's what 8), S (7) or Vh (9) by gesdd as numpy's (full_matrices: I0); each row
    # saves U's first k columns, Vh's first k rows, S. numba's float64 gesdd gives numpy's factors
    # bit for bit, its float32 one does not (the vectors' signs may differ): the trace checks
    # float64. A matrix holding nan stops the replay (eager raises), one holding inf gives nan
    at = prog[j, P_K]
    what = pints[at]
    bt = pints[at + 1]
    m = pints[at + 2]
    n = pints[at + 3]
    k = pints[at + 4]
    full = prog[j, P_I0] != 0
    uc = m if full else k
    vr = n if full else k
    su = s
    sh = s + bt * m * k
    ss = s + bt * (m * k + k * n)
    for b in range(bt):
        a = x[b * m * n: (b + 1) * m * n].reshape((m, n))
        if k == 0:          # an empty matrix: identities, as the eager forward
            if what == 8:
                for p in range(min(m, uc)):
                    out[b * m * uc + p * uc + p] = 1
            elif what == 9:
                for p in range(min(vr, n)):
                    out[b * vr * n + p * n + p] = 1
            continue
        if not np.isfinite(a).all():
            if np.isnan(a).any():
                pints[pints.size - 1] = j + 1
                return
            if what == 8:
                out[b * m * uc: (b + 1) * m * uc] = np.nan
            elif what == 7:
                out[b * k: (b + 1) * k] = np.nan
            else:
                out[b * vr * n: (b + 1) * vr * n] = np.nan
            if s >= 0:
                sv[su + b * m * k: su + (b + 1) * m * k] = np.nan
                sv[sh + b * k * n: sh + (b + 1) * k * n] = np.nan
                sv[ss + b * k: ss + (b + 1) * k] = np.nan
            continue
        u, sg, vh = np.linalg.svd(a, full)
        if what == 8:
            for p in range(m):
                for q in range(uc):
                    out[b * m * uc + p * uc + q] = u[p, q]
        elif what == 7:
            for i in range(k):
                out[b * k + i] = sg[i]
        else:
            for p in range(vr):
                for q in range(n):
                    out[b * vr * n + p * n + q] = vh[p, q]
        if s >= 0:
            for p in range(m):
                for q in range(k):
                    sv[su + b * m * k + p * k + q] = u[p, q]
            for p in range(k):
                for q in range(n):
                    sv[sh + b * k * n + p * n + q] = vh[p, q]
                sv[ss + b * k + p] = sg[p]


_SVD_FORWARD = needs(_fwd_svd, "x,f64", fails=lambda x, y, i0, ints: _numpy_svd(x))
SVD_S = defop("LinalgSvdBackward0", _linalg_svd, forward=_SVD_FORWARD, x=_svd_s_grad)
SVD_U = defop("LinalgSvdBackward0", _linalg_svd, forward=_SVD_FORWARD, x=_svd_u_grad)
SVD_V = defop("LinalgSvdBackward0", _linalg_svd, forward=_SVD_FORWARD, x=_svd_v_grad)


def _svd_saves(out, u, s, vh, k):
    u3, _ = _batch(np.ascontiguousarray(u[..., :k]))
    vh3, _ = _batch(np.ascontiguousarray(vh[..., :k, :]))
    return _save(out, u3, vh3, s)


def linalg_svd(A, full_matrices=True, *, driver=None):
    a = _matrices("linalg.svd", A, square=False)
    m, n = a.shape[-2:]
    k = min(m, n)
    with quiet():
        if a.size:
            u, s, vh = _numpy_svd(a, full_matrices=full_matrices)
        else:
            bs = a.shape[:-2]
            u = np.broadcast_to(np.eye(m, m if full_matrices else k, dtype=a.dtype), bs + (m, m if full_matrices else k))
            vh = np.broadcast_to(np.eye(n if full_matrices else k, n, dtype=a.dtype), bs + (n if full_matrices else k, n))
            s = np.zeros(bs + (k,), a.dtype)
    u, s, vh = _arr(u), _arr(s), _arr(vh)
    if not _needs_grad(A):
        return svd_result(_wrap(u), _wrap(s), _wrap(vh))
    bt = _batch(a)[1]
    full = builtins.int(bool(full_matrices))       # (for the forward kernel)
    return svd_result(
        record(SVD_U, u, A, saves=_svd_saves(u, u, s, vh, k), ints=_ints(_SVD_U, bt, m, n, k, u.shape[-1]),
               i0=full, broadcast=False),
        record(SVD_S, s, A, saves=_svd_saves(s, u, s, vh, k), ints=_ints(_SVD_S, bt, m, n, k), i0=full,
               broadcast=False),
        record(SVD_V, vh, A, saves=_svd_saves(vh, u, s, vh, k),
               ints=_ints(_SVD_V, bt, m, n, k, vh.shape[-2]), i0=full, broadcast=False))


def linalg_svdvals(A, *, driver=None):
    a = _matrices("linalg.svdvals", A, square=False)
    if not _needs_grad(A):
        with quiet():
            return _wrap(_arr(_numpy_svd(a, compute_uv=False) if a.size else
                              np.zeros(a.shape[:-2] + (min(a.shape[-2:]),), a.dtype)))
    return linalg_svd(A, full_matrices=False)[1]


# ---- qr ---------------------------------------------------------------------------------------
def _qr_grad(gq, gr, q, r):
    """derivatives.yaml's linalg_qr_backward (mode='reduced'), as the kernel computes it."""
    m, n = q.shape[-2], r.shape[-1]
    c = min(m, n)
    u = narrow(r, -1, 0, c) if n > c else r
    if n > c:
        gv = narrow(gr, -1, c, n - c)
        gq = gq + q @ (narrow(r, -1, c, n - c) @ gv.mT)
        gr = narrow(gr, -1, 0, c)
    mm = u @ gr.mT - gq.mT @ q
    mm = mm.tril() + mm.tril(-1).mT
    gx = (gq + q @ mm) @ linalg_inv(u).mT
    return cat([gx, q @ gv], -1) if n > c else gx


def _zeros(t):
    return _wrap(np.zeros(tuple(t.shape), t._a.dtype))


def _qr_q_grad(g, x):
    q, r = linalg_qr(x)
    return _qr_grad(g, _zeros(r), q, r)


def _qr_r_grad(g, x):
    q, r = linalg_qr(x)
    return _qr_grad(_zeros(q), g, q, r)


def _fwd_qr(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # Q (int data's q 0) or R (1) by geqrf and orgqr as numpy's (mode 'reduced', or 'complete'
    # with m <= n: the same); saves Q, R, U^-1 (gesv on the identity; U: R's first c columns).
    # A matrix holding inf or nan gives nan; a singular U stops a recorded replay (eager's inv
    # raises). The trace checks float64: numba's float32 geqrf differs from numpy's in the last
    # bits, which U^-1 amplifies in the gradient
    at = prog[j, P_K]
    bt = pints[at + 1]
    m = pints[at + 2]
    n = pints[at + 3]
    c = pints[at + 4]
    r_row = pints[at + 5] != 0
    if c == 0:
        return
    eye = np.zeros((c, c), out.dtype)
    for i in range(c):
        eye[i, i] = 1
    sq = s
    sr = s + bt * m * c
    su = s + bt * (m * c + c * n)
    for b in range(bt):
        a = x[b * m * n: (b + 1) * m * n].reshape((m, n))
        if not np.isfinite(a).all():
            if r_row:
                out[b * c * n: (b + 1) * c * n] = np.nan
            else:
                out[b * m * c: (b + 1) * m * c] = np.nan
            if s >= 0:
                sv[sq + b * m * c: sq + (b + 1) * m * c] = np.nan
                sv[sr + b * c * n: sr + (b + 1) * c * n] = np.nan
                sv[su + b * c * c: su + (b + 1) * c * c] = np.nan
            continue
        q, r = np.linalg.qr(a)
        if r_row:
            for p in range(c):
                for t in range(n):
                    out[b * c * n + p * n + t] = r[p, t]
        else:
            for p in range(m):
                for t in range(c):
                    out[b * m * c + p * c + t] = q[p, t]
        if s < 0:
            continue
        u = np.empty((c, c), out.dtype)
        for p in range(c):
            for t in range(c):
                u[p, t] = r[p, t]
        try:
            uinv = np.linalg.solve(u, eye)
        except Exception:       # (R singular: A's first c columns dependent)
            pints[pints.size - 1] = j + 1
            return
        for p in range(m):
            for t in range(c):
                sv[sq + b * m * c + p * c + t] = q[p, t]
        for p in range(c):
            for t in range(n):
                sv[sr + b * c * n + p * n + t] = r[p, t]
            for t in range(c):
                sv[su + b * c * c + p * c + t] = uinv[p, t]


def _qr_failure(a):
    """Raise the eager forward's error: numpy's, inverting R's first columns."""
    with quiet():
        r = np.linalg.qr(a)[1]
        np.linalg.inv(r[..., :min(a.shape[-2:])])


_QR_FORWARD = needs(_fwd_qr, "x,f64", fails=lambda x, y, i0, ints: _qr_failure(x))
QR_Q = defop("LinalgQrBackward0", _linalg_qr, forward=_QR_FORWARD, x=_qr_q_grad)
QR_R = defop("LinalgQrBackward0", _linalg_qr, forward=_QR_FORWARD, x=_qr_r_grad)


def linalg_qr(A, mode="reduced"):
    """Householder QR (LAPACK's geqrf). Differentiable in torch's cases: mode='reduced', or
    'complete' with m <= n; otherwise the result does not require grad."""
    a = _matrices("linalg.qr", A, square=False)
    if mode not in ("reduced", "r", "complete"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' "
                           "(default), 'r', or 'complete'")
    m, n = a.shape[-2:]
    c = min(m, n)
    with quiet():
        if a.size:
            q, r = np.linalg.qr(a, "complete" if mode == "complete" else "reduced")
        else:
            cols = m if mode == "complete" else c
            q = np.broadcast_to(np.eye(m, cols, dtype=a.dtype), a.shape[:-2] + (m, cols))
            r = np.zeros(a.shape[:-2] + (cols, n), a.dtype)
    q, r = _arr(q), _arr(r)
    if mode == "r":
        q = np.zeros((0,), a.dtype)
    if not _needs_grad(A) or mode == "r" or (mode == "complete" and m > n):
        return qr_result(_wrap(q), _wrap(r))
    q3, bt = _batch(q)
    r3, _ = _batch(r)
    with quiet():
        uinv = np.linalg.inv(r3[..., :c]) if bt and c else r3[..., :c]
    saves = (q3, r3, uinv)
    return qr_result(record(QR_Q, q, A, saves=_save(q, *saves), ints=_ints(_QR, bt, m, n, c, 0), broadcast=False),
                     record(QR_R, r, A, saves=_save(r, *saves), ints=_ints(_QR, bt, m, n, c, 1), broadcast=False))


# ---- pinv, lstsq ------------------------------------------------------------------------------
def _pinv_backward(g, p, a):
    """derivatives.yaml's pinv_backward: -P^T G P^T + (I - A P) G^T P P^T + P^T P G^T (I - P A)."""
    ph, gh = p.mT, g.mT
    return -(ph @ g @ ph) + (gh - a @ (p @ gh)) @ (p @ ph) + (ph @ p) @ (gh - (gh @ p) @ a)


def _fwd_pinv(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # A^+ as _pinv: by the SVD (gesdd), or when hermitian (cv[2]) eigh of A's lower triangle;
    # singular values (|eigenvalues|) at most max(atol, rtol * the largest) (cv[0], cv[1]) drop.
    # (Unique: the factors' signs do not matter.) Saves out, A. A holding nan stops the replay by
    # the SVD (eager raises); inf or nan gives nan otherwise. The trace checks float64, as qr's
    at = prog[j, P_K]
    bt = pints[at + 1]
    m = pints[at + 2]
    n = pints[at + 3]
    atol = cv[prog[j, P_C]]
    rtol = cv[prog[j, P_C] + 1]
    hermitian = cv[prog[j, P_C] + 2] != 0
    mn = m * n
    k = min(m, n)
    if mn == 0:
        out[:] = 0
        return
    sinv = np.empty(k, out.dtype)
    w = np.empty((n, k), out.dtype)
    for b in range(bt):
        a = x[b * mn: (b + 1) * mn].reshape((m, n))
        o = out[b * mn: (b + 1) * mn]
        if not np.isfinite(a).all():
            if not hermitian and np.isnan(a).any():
                pints[pints.size - 1] = j + 1
                return
            o[:] = np.nan
            continue
        if hermitian:
            low = np.zeros((n, n), out.dtype)
            for p in range(n):
                for q in range(p + 1):
                    low[p, q] = a[p, q]
            ev, vec = np.linalg.eigh(low)
            top = np.abs(ev).max()
            for i in range(n):
                keep = abs(ev[i]) > max(atol, rtol * top)
                sinv[i] = 1 / ev[i] if keep else 0
                for p in range(n):
                    w[p, i] = vec[p, i] * sinv[i]
            r = np.dot(w, np.ascontiguousarray(vec.T))
        else:
            u, sg, vh = np.linalg.svd(a, False)
            for i in range(k):
                sinv[i] = 1 / sg[i] if sg[i] > max(atol, rtol * sg[0]) else 0
                for p in range(n):
                    w[p, i] = vh[i, p] * sinv[i]
            r = np.dot(w, np.ascontiguousarray(u.T))
        for p in range(n):
            for q in range(m):
                o[p * m + q] = r[p, q]
    if s >= 0:
        sv[s: s + out.size] = out
        sv[s + out.size: s + 2 * out.size] = x


PINV = defop("LinalgPinvBackward0", _linalg_pinv,
             forward=needs(_fwd_pinv, "x,cc,f64", fails=lambda x, y, i0, ints: _numpy_svd(x)),
             x=lambda g, x, out: _pinv_backward(g, out, x))


def _pinv_tolerances(a, atol, rtol):
    """torch's cutoff: singular values at most max(atol, rtol * largest) drop; rtol defaults to
    eps * max(m, n) when atol is unset or zero."""
    m, n = a.shape[-2:]
    if rtol is None:
        rtol = np.finfo(a.dtype).eps * max(m, n) if not atol else 0.0
    return 0.0 if atol is None else atol, rtol


def _pinv(a, atol=None, rtol=None, hermitian=False):
    """numpy pinv with torch's cutoff (_pinv_tolerances)."""
    atol, rtol = _pinv_tolerances(a, atol, rtol)
    with quiet():
        if hermitian:
            w, v = np.linalg.eigh(a)
            s = np.abs(w)
            keep = s > np.maximum(atol, rtol * s.max(-1, keepdims=True))
            return (v * np.where(keep, 1 / np.where(keep, w, 1), 0)[..., None, :]) @ np.swapaxes(v, -1, -2)
        u, s, vh = _numpy_svd(a, full_matrices=False)
        keep = s > np.maximum(atol, rtol * s[..., :1])
        sinv = np.where(keep, 1 / np.where(keep, s, 1), 0)
        return (np.swapaxes(vh, -1, -2) * sinv[..., None, :]) @ np.swapaxes(u, -1, -2)


def linalg_pinv(A, *, atol=None, rtol=None, hermitian=False):
    if not isinstance(A, Tensor) or A._a.ndim < 2 or A._a.dtype.kind != "f" or A._a.dtype == np.float16:
        what = f"{A.dtype.tensor_type[:-6]}{{{list(A.shape)}}}" if isinstance(A, Tensor) else type(A).__name__
        raise RuntimeError(f"linalg.pinv({what}): expected a tensor with 2 or more dimensions of float, "
                           "double, cfloat or cdouble types")
    a = A._a
    m, n = a.shape[-2:]
    out = _arr((_pinv(a, atol, rtol, hermitian) if a.size else np.zeros(a.shape[:-2] + (n, m), a.dtype))
               .astype(a.dtype))
    if not _needs_grad(A):
        return _wrap(out)
    p3, bt = _batch(out)
    tols = _pinv_tolerances(a, atol, rtol)
    plain = all(isinstance(t, (builtins.int, builtins.float, np.floating)) for t in tols)
    return record(PINV, out, A, saves=_save(out, p3, _batch(a)[0]), ints=_ints(_PINV, bt, m, n), broadcast=False,
                  scalars=tols + (builtins.int(bool(hermitian)),) if plain else ())


def _lstsq_grads(g, x, y, node):
    vector = node.i0
    gm, bm = (g.unsqueeze(-1), y.unsqueeze(-1)) if vector else (g, y)
    p = linalg_pinv(x)
    return p, gm, bm, vector


def _lstsq_a(g, x, y, node):
    p, gm, bm, _ = _lstsq_grads(g, x, y, node)
    return _pinv_backward(gm @ bm.mT, p, x)


def _lstsq_b(g, x, y, node):
    p, gm, _, vector = _lstsq_grads(g, x, y, node)
    gb = p.mT @ gm
    return gb.squeeze(-1) if vector else gb


def _fwd_lstsq(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # X = A^+ B by gelsd as numpy's lstsq (rcond: cv[0]); nan for a non-finite A, as the
    # eager forward; A^+ B for a non-finite B (numba's gelsd refuses it). Saves A^+ (as _pinv),
    # A, B. A holding nan stops a recorded replay (eager's SVD raises). The trace checks
    # float64, as qr's
    at = prog[j, P_K]
    bt = pints[at + 1]
    m = pints[at + 2]
    n = pints[at + 3]
    p = pints[at + 5]
    mn = m * n
    k = min(m, n)
    if out.size == 0:
        return
    eps = np.finfo(out.dtype).eps * max(m, n)
    sinv = np.empty(k, out.dtype)
    w = np.empty((n, k), out.dtype)
    sa = s + bt * mn
    for b in range(bt):
        a = x[b * mn: (b + 1) * mn].reshape((m, n))
        rhs = y[b * m * p: (b + 1) * m * p].reshape((m, p))
        o = out[b * n * p: (b + 1) * n * p]
        pv = np.zeros((n, m), out.dtype)
        if not np.isfinite(a).all():
            if s >= 0 and np.isnan(a).any():
                pints[pints.size - 1] = j + 1
                return
            o[:] = np.nan
            pv[:, :] = np.nan
        elif k:
            u, sg, vh = np.linalg.svd(a, False)        # the pseudo-inverse, as _pinv
            for i in range(k):
                sinv[i] = 1 / sg[i] if sg[i] > eps * sg[0] else 0
                for q in range(n):
                    w[q, i] = vh[i, q] * sinv[i]
            pv = np.dot(w, np.ascontiguousarray(u.T))
            if np.isfinite(rhs).all():
                sol = np.linalg.lstsq(a, rhs, cv[prog[j, P_C]])[0]
                for q in range(n):
                    for t in range(p):
                        o[q * p + t] = sol[q, t]
            else:
                o[:] = np.dot(pv, rhs).reshape(-1)
        else:
            o[:] = 0
        if s >= 0:
            for q in range(n):
                for t in range(m):
                    sv[s + b * mn + q * m + t] = pv[q, t]
    if s >= 0:
        sv[sa: sa + x.size] = x
        sv[sa + x.size: sa + x.size + y.size] = y


def _fwd_nothing(out, x, y, v, ext, iext, sv, s, prog, j, shapes, pints, rows, bints, cv):
    # lstsq's residuals when empty (the trace checks): there is nothing to write
    return


LSTSQ = defop("LinalgLstsqBackward0", _linalg_pinv, 2,
              forward=needs(_fwd_lstsq, "x,y,c,f64", fails=lambda x, y, i0, ints: _numpy_svd(_batch(x)[0])),
              x=_lstsq_a, y=_lstsq_b)
LSTSQ_RESIDUALS = defop("LinalgLstsqBackward0", _linalg_inv_det, 2, forward=needs(_fwd_nothing, "empty"),
                        x=lambda g: None, y=lambda g: None)


def linalg_lstsq(A, B, rcond=None, *, driver=None):
    """The least-squares (or minimum-norm) solution of A X = B, by the SVD (LAPACK's gelsd);
    rank, singular values and residuals as torch's driver (default 'gelsy') returns them."""
    a = _matrices("torch.linalg.lstsq", A, square=False)
    if driver not in (None, "gelsy", "gels", "gelsd", "gelss"):
        raise RuntimeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, "
                           "gelsd, gelss)")
    if not isinstance(B, Tensor):
        raise TypeError(f"linalg_lstsq(): argument 'b' (position 2) must be Tensor, not {type(B).__name__}")
    b = B._a
    if a.dtype != b.dtype:
        raise RuntimeError(f"torch.linalg.lstsq: Expected input and other to have the same dtype, but got "
                           f"input's dtype {dtypes.c_name(a.dtype)} and other's dtype {dtypes.c_name(b.dtype)}")
    driver = driver or "gelsy"
    vector = b.ndim == a.ndim - 1
    bm = b[..., None] if vector else b
    if bm.shape[-2] != a.shape[-2]:
        raise RuntimeError("torch.linalg.lstsq: input.size(-2) should match other.size(-2)")
    m, n = a.shape[-2:]
    batch = _broadcast_shape(a.shape[:-2], bm.shape[:-2])
    if a.shape[:-2] != batch:
        A = expand(A, batch + (m, n))
        a = A._a
    if bm.shape[:-2] != batch:
        B = expand(B, batch + bm.shape[-2:-1 if vector else None])
        b = B._a
        bm = b[..., None] if vector else b
    p = bm.shape[-1]
    a3, bt = _batch(a)
    b3, _ = _batch(bm)
    eps = np.finfo(a.dtype).eps * max(m, n) if rcond is None else rcond
    x3 = np.zeros((bt, n, p), a.dtype)
    ranks = np.zeros(bt, np.int64)
    svals = np.zeros((bt, min(m, n)), a.dtype)
    with quiet():
        for k in range(bt):
            if np.isfinite(a3[k]).all():
                x3[k], _, ranks[k], svals[k] = np.linalg.lstsq(a3[k], b3[k], rcond=eps)
            else:     # nan, as PyTorch's: LAPACK's gelsd can loop forever on inf or nan
                x3[k], svals[k] = np.nan, np.nan
    xm = x3.reshape(batch + (n, p))
    out = _arr(xm[..., 0] if vector else xm)
    full_rank = bool((ranks == n).all())
    if driver != "gelsy" and m > n and full_rank:
        with quiet():
            res = ((a @ xm - bm) ** 2).sum(-2)
        res = _arr(res[..., 0] if vector else res)
    else:
        res = np.zeros((0,), a.dtype)
    rank = _wrap(ranks.reshape(batch)) if driver != "gels" else _wrap(np.zeros((0,), np.int64))
    sv = _wrap(svals.reshape(batch + (min(m, n),))) if driver in ("gelsd", "gelss") else \
        _wrap(np.zeros((0,), a.dtype))
    if hook.tracer is not None and driver not in ("gelsd", "gelss"):
        hook.tracer.constant(sv)         # (always empty: a compiled replay may read it)
    if not _needs_grad(A, B):
        return lstsq_result(_wrap(out), _wrap(res), rank, sv)
    with quiet():
        pinv3 = _pinv(a3)
    vec = builtins.int(vector)
    return lstsq_result(
        record(LSTSQ, out, A, B, saves=_save(out, pinv3, a3, b3), ints=_ints(_LSTSQ, bt, m, n, 0, p), i0=vec,
               broadcast=False, scalars=(eps,) if isinstance(eps, (builtins.int, builtins.float, np.floating))
               else ()),
        record(LSTSQ_RESIDUALS, res, A, B, ints=_ints(_ZERO, bt, m, n), i0=vec, broadcast=False), rank, sv)


# ---- matrix_exp ---------------------------------------------------------------------------------
def _matrix_exp_grad(g, x):
    """L(A^T, G): the upper right block of exp([[A^T, G], [0, A^T]])."""
    at = x.mT
    n = x.shape[-1]
    zero = _zeros(at)
    big = cat([cat([at, g], -1), cat([zero, at], -1)], -2)
    return narrow(narrow(linalg_matrix_exp(big), -2, 0, n), -1, n, n)


MATRIX_EXP = defop("LinalgMatrixExpBackward0", _linalg_matrix_exp, x=_matrix_exp_grad)


@torch_names("matrix_exp")
def linalg_matrix_exp(A):
    """exp(A) by scaling and squaring with Pade approximants (scipy's expm, Higham 2005)."""
    a = _matrices("linalg.matrix_exp", A)
    from scipy.linalg import expm
    with quiet():
        out = _arr((expm(a) if a.size else a.copy()).astype(a.dtype))
    if not _needs_grad(A):
        return _wrap(out)
    a3, bt = _batch(a)
    n = a.shape[-1]
    return record(MATRIX_EXP, out, A, saves=_save(out, a3), ints=_ints(0, bt, n, n), broadcast=False)


# ---- samples ----------------------------------------------------------------------------------
# Decompositions that read one triangle (cholesky, eigh) are sampled on x x^T / x + x^T, and those
# whose vectors are fixed only up to sign (eigh, svd) through their absolute values, so that finite
# differences and PyTorch's LAPACK see the same function. These wrappers run on jitgrad's and
# torch's tensors alike (the library is the tensor's).
def _library(x):
    import sys
    return sys.modules[type(x).__module__.split(".")[0]]


def _cholesky_of_gram(x, upper=False):
    return _library(x).linalg.cholesky(x @ x.mT, upper=upper)


def _eigh_of_sym(x, UPLO="L"):
    lam, v = _library(x).linalg.eigh(x + x.mT, UPLO)
    return lam, v.abs()


def _svd_abs(x, full_matrices=True):
    u, s, vh = _library(x).linalg.svd(x, full_matrices=full_matrices)
    k = s.shape[-1]
    return u.narrow(-1, 0, k).abs(), s, vh.narrow(-2, 0, k).abs()


SAME_IN_TORCH = (_cholesky_of_gram, _eigh_of_sym, _svd_abs)

_WELL = [[2.0, 0.3, -0.4], [0.1, 1.5, 0.2], [-0.3, 0.4, 1.8]]    # well conditioned, det > 0
samples(linalg_solve_triangular, ((3, 3), (3, 2), {"upper": True}), ((3, 3), (3, 2), {"upper": False}),
        ((2, 3, 3), (2, 4, 3), {"upper": True, "left": False}),
        ((3, 3), (3, 1), {"upper": False, "unitriangular": True}),
        ((3, 3), (2, 3), {"upper": True, "left": False, "unitriangular": True}))
samples(linalg_inv, ((3, 3),), ((2, 3, 3),), ((1, 1),), (Given(_WELL),))
samples(linalg_det, ((3, 3),), ((2, 3, 3),))
samples(linalg_slogdet, ((3, 3),), ((2, 2, 2),))
samples(logdet, (Given(_WELL),), (Given([_WELL, [[1.5, 0.2, 0.1], [0.3, 2.0, -0.2], [0.1, 0.4, 1.2]]]),))
samples(linalg_solve, ((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3, 2)), ((2, 3, 3), (2, 3)),
        ((3, 3), (2, 3, 1)), ((3, 3), (2, 3), {"left": False}), ((2, 3, 3), (4, 3), {"left": False}))
samples(_cholesky_of_gram, (Given(_WELL),), (Given(_WELL), {"upper": True}),
        (Given([_WELL, [r[::-1] for r in _WELL]]),))
samples(_eigh_of_sym, ((3, 3),), ((2, 3, 3),), ((3, 3), "U"))
samples(_svd_abs, ((3, 3),), ((4, 3),), ((3, 4),), ((2, 4, 3), {"full_matrices": False}),
        ((2, 3, 4), {"full_matrices": False}))
samples(linalg_svdvals, ((3, 3),), ((4, 3),), ((2, 3, 4),))
samples(linalg_qr, ((3, 3),), ((4, 3),), ((3, 4),), ((2, 4, 3),), ((3, 4), "complete"))
samples(linalg_pinv, ((3, 3),), ((4, 3),), ((3, 4),), ((2, 3, 4),))
samples(linalg_matrix_exp, ((3, 3),), ((2, 2, 2),), (Given([[0.0, 4.0], [-4.0, 0.5]]),))
samples(linalg_lstsq, ((4, 3), (4, 2)), ((4, 3), (4,)), ((3, 4), (3, 2)), ((2, 4, 3), (1, 4, 2)), ((2, 3, 3), (2, 3)))
