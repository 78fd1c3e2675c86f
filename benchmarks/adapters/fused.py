"""The practical limit: W1, W2, W3 and the W4 step written out by hand as one ``@njit`` call each
(forward, backward and, for W1/W2, the SGD update), on the shared data and initial values.

No graph, no tape, no per-op dispatch: what is left is the arithmetic and one Python -> Numba call.
The formulas are the ones in workloads.py, differentiated by hand; tests/test_benchmarks_quick.py
checks the gradients against the other systems.
"""
import numpy as np
from numba import njit

from . import Case


def load(system):
    return Fused()


@njit(cache=True)
def _sgd2(W, G, lr):
    for i in range(W.shape[0]):
        for j in range(W.shape[1]):
            W[i, j] -= lr * G[i, j]


@njit(cache=True)
def _w1_step(X, y, W0, b0, W1, b1, W2, b2, gW0, gb0, gW1, gb1, gW2, gb2, lr, alpha):
    """2-H1-H2-1 ReLU MLP, mean hinge loss + alpha * sum of squares, SGD."""
    n, nin = X.shape
    h1, h2 = W1.shape
    A1 = np.empty((n, h1), X.dtype)
    A2 = np.empty((n, h2), X.dtype)
    dS = np.empty(n, X.dtype)
    loss = 0.0
    for i in range(n):
        for j in range(h1):
            s = b0[j]
            for k in range(nin):
                s += X[i, k] * W0[k, j]
            A1[i, j] = s if s > 0 else 0.0
        for j in range(h2):
            s = b1[j]
            for k in range(h1):
                s += A1[i, k] * W1[k, j]
            A2[i, j] = s if s > 0 else 0.0
        s = b2[0]
        for k in range(h2):
            s += A2[i, k] * W2[k, 0]
        m = 1.0 - y[i, 0] * s
        if m > 0:
            loss += m / n
            dS[i] = -y[i, 0] / n
        else:
            dS[i] = 0.0
    reg = 0.0
    for p in (W0.reshape(W0.size), b0, W1.reshape(W1.size), b1, W2.reshape(W2.size), b2):
        for k in range(p.size):
            reg += p[k] * p[k]
    loss += alpha * reg
    # backward
    gb2[0] = 2 * alpha * b2[0]
    for k in range(h2):
        gW2[k, 0] = 2 * alpha * W2[k, 0]
    for j in range(h2):
        gb1[j] = 2 * alpha * b1[j]
        for k in range(h1):
            gW1[k, j] = 2 * alpha * W1[k, j]
    for j in range(h1):
        gb0[j] = 2 * alpha * b0[j]
        for k in range(nin):
            gW0[k, j] = 2 * alpha * W0[k, j]
    dA2 = np.empty(h2, X.dtype)
    for i in range(n):
        d = dS[i]
        if d == 0.0:
            continue
        gb2[0] += d
        for k in range(h2):
            gW2[k, 0] += A2[i, k] * d
            dA2[k] = d * W2[k, 0] if A2[i, k] > 0 else 0.0
        for j in range(h2):
            gb1[j] += dA2[j]
        for k in range(h1):
            if A1[i, k] > 0:
                acc = 0.0
                for j in range(h2):
                    gW1[k, j] += A1[i, k] * dA2[j]
                    acc += dA2[j] * W1[k, j]
                gb0[k] += acc
                for m in range(nin):
                    gW0[m, k] += X[i, m] * acc
    _sgd2(W0, gW0, lr)
    _sgd2(W1, gW1, lr)
    _sgd2(W2, gW2, lr)
    for p, g in ((b0, gb0), (b1, gb1), (b2, gb2)):
        for k in range(p.size):
            p[k] -= lr * g[k]
    return loss


@njit(cache=True)
def _w2_step(X, onehot, W0, b0, W1, b1, gW0, gb0, gW1, gb1, lr):
    """784-128-10 ReLU MLP, mean cross-entropy (stable log-softmax), SGD; BLAS for the matmuls."""
    B = X.shape[0]
    H = np.dot(X, W0)
    for i in range(B):
        for j in range(H.shape[1]):
            v = H[i, j] + b0[j]
            H[i, j] = v if v > 0 else 0
    Z = np.dot(H, W1)
    C = Z.shape[1]
    G = np.empty_like(Z)
    loss = 0.0
    for i in range(B):
        m = Z[i, 0] + b1[0]
        for j in range(C):
            Z[i, j] += b1[j]
            m = max(m, Z[i, j])
        s = 0.0
        for j in range(C):
            G[i, j] = np.exp(Z[i, j] - m)
            s += G[i, j]
        lse = np.log(s) + m
        for j in range(C):
            loss -= onehot[i, j] * (Z[i, j] - lse) / B
            G[i, j] = (G[i, j] / s - onehot[i, j]) / B
    gW1[:, :] = np.dot(H.T, G)
    gb1[:] = G.sum(axis=0)
    dH = np.dot(G, W1.T)
    for i in range(B):
        for j in range(dH.shape[1]):
            if H[i, j] <= 0:
                dH[i, j] = 0
    gW0[:, :] = np.dot(X.T, dH)
    gb0[:] = dH.sum(axis=0)
    _sgd2(W0, gW0, lr)
    _sgd2(W1, gW1, lr)
    for p, g in ((b0, gb0), (b1, gb1)):
        for k in range(p.size):
            p[k] -= lr * g[k]
    return loss


@njit(cache=True)
def _w3_step(x, pairs, g):
    """Forward: y = (y*1.001 + 0.001) pairs times, loss = sum(y); backward: g = d loss/dx."""
    loss = 0.0
    for i in range(x.size):
        v = x[i]
        for _ in range(pairs):
            v = v * 1.001
            v = v + 0.001
        loss += v
    for i in range(x.size):
        d = 1.0
        for _ in range(pairs):      # reverse of the chain: each mul contributes 1.001, add 1
            d = d * 1.001
        g[i] = d
    return loss


@njit(cache=True)
def _w4_step(x0, w, b, pairs, ys, g):
    """Forward: y = y*w + b, pairs times, keeping each y that a product reads (any reverse pass
    needs them: what a tape saves); backward: g = (d y/dw, d y/db)."""
    y = x0
    for i in range(pairs):
        ys[i] = y
        y = y * w
        y = y + b
    gw = 0.0
    gb = 0.0
    d = 1.0
    for i in range(pairs - 1, -1, -1):
        gb += d
        gw += d * ys[i]
        d = d * w
    g[0] = gw
    g[1] = gb
    return y


class Fused:
    def w1(self, wl):
        X, y = wl.data()
        ps = wl.params()
        if wl.widths[-1] != 1:
            raise ValueError("the hand-fused W1 kernel has one output unit")
        gs = [np.zeros_like(p) for p in ps]
        step = _w1_step
        lr, alpha = wl.lr, wl.alpha
        return Case(lambda _: step(X, y, *ps, *gs, lr, alpha), lambda: [g.copy() for g in gs])

    def w2(self, wl):
        X, labels, onehot = wl.data()
        ps = wl.params()
        gs = [np.zeros_like(p) for p in ps]
        step = _w2_step
        return Case(lambda _: step(X, onehot, *ps, *gs, wl.lr), lambda: [g.copy() for g in gs])

    def w3(self, wl):
        (x,) = wl.data()
        g = np.zeros_like(x)
        step = _w3_step
        return Case(lambda _: step(x, wl.pairs, g), lambda: [g.copy()])

    def w4_step(self, wl):
        x0 = float(wl.data())
        w, b = (float(p) for p in wl.params())
        pairs = wl.nodes // 2
        ys, g = np.empty(pairs), np.zeros(2)
        step = _w4_step
        return Case(lambda _: step(x0, w, b, pairs, ys, g), lambda: [np.array(g[0]), np.array(g[1])])
