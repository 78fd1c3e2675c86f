"""The one definition of every benchmark workload: sizes, data, initial values and the math.

Every system is an adapter (benchmarks/adapters/) that turns the numpy arrays made here into its
own tensors and runs the functions below through a small namespace ``F`` of the primitives they
need (relu, tanh, exp, log, sum, mean, cross_entropy). Operators (@, +, *, -) are each library's
own. Nothing about data, shapes, initialisation or loss is repeated in an adapter; the two
adapters that cannot run this code as written (micrograd works on scalar ``Value`` objects, the
hand-fused Numba kernels are the loss written out by hand) follow the same formulas and are
checked against the others by tests/test_benchmarks_quick.py.

``quick=True`` gives tiny sizes for the CI smoke test; the formulas do not change.
"""
import numpy as np

SEED = 0


def _rng(tag):
    # one stream per workload, so changing one workload never changes another's data
    return np.random.default_rng([SEED, sum(map(ord, tag))])


# ---- W1: micrograd's moons demo ---------------------------------------------------------------
class W1:
    """MLP 2-16-16-1, ReLU, batch 100, hinge loss + 1e-4 * L2 of every parameter, one SGD step."""
    key = "W1"

    def __init__(self, quick=False, dtype="float64"):
        self.n = 10 if quick else 100
        self.widths = (2, 4, 4, 1) if quick else (2, 16, 16, 1)
        self.dtype = np.dtype(dtype)
        self.alpha = 1e-4
        self.lr = 0.05
        self.describe = (f"moons MLP {'-'.join(map(str, self.widths))} ReLU, batch {self.n}, "
                         f"{self.dtype}, hinge + {self.alpha:g}*L2, SGD step")

    def data(self):
        """make_moons(n, noise=0.1) as scikit-learn draws it; labels are -1/+1 of shape (n, 1)."""
        rng = _rng(self.key)
        n_out = self.n // 2
        n_in = self.n - n_out
        t_out = np.linspace(0, np.pi, n_out)
        t_in = np.linspace(0, np.pi, n_in)
        X = np.vstack([np.c_[np.cos(t_out), np.sin(t_out)],
                       np.c_[1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5]])
        X += rng.normal(scale=0.1, size=X.shape)
        y = np.r_[-np.ones(n_out), np.ones(n_in)].reshape(-1, 1)
        return X.astype(self.dtype), y.astype(self.dtype)

    def params(self):
        """[W0, b0, W1, b1, W2, b2]; W of shape (in, out) ~ U(-1, 1) and b = 0, as micrograd."""
        rng = _rng(self.key + "p")
        ps = []
        for nin, nout in zip(self.widths[:-1], self.widths[1:]):
            ps.append(rng.uniform(-1, 1, (nin, nout)).astype(self.dtype))
            ps.append(np.zeros(nout, self.dtype))
        return ps

    def loss(self, F, p, X, y):
        h = X
        for i in range(0, len(p) - 2, 2):
            h = F.relu(h @ p[i] + p[i + 1])
        scores = h @ p[-2] + p[-1]
        data_loss = F.mean(F.relu(1 - y * scores))
        reg = F.sum(p[0] * p[0])
        for q in p[1:]:
            reg = reg + F.sum(q * q)
        return data_loss + self.alpha * reg


# ---- W2: an MNIST-sized MLP --------------------------------------------------------------------
class W2:
    """MLP 784-128-10, ReLU, batch 64, float32, mean cross-entropy, one SGD step."""
    key = "W2"

    def __init__(self, quick=False, dtype="float32"):
        self.batch = 4 if quick else 64
        self.widths = (12, 8, 3) if quick else (784, 128, 10)
        self.dtype = np.dtype(dtype)
        self.lr = 0.01
        self.describe = (f"MLP {'-'.join(map(str, self.widths))} ReLU, batch {self.batch}, "
                         f"{self.dtype}, cross-entropy, SGD step")

    def data(self):
        """X ~ N(0, 1) of shape (batch, 784); integer labels and their one-hot matrix."""
        rng = _rng(self.key)
        X = rng.standard_normal((self.batch, self.widths[0])).astype(self.dtype)
        labels = rng.integers(0, self.widths[-1], self.batch).astype(np.int64)
        onehot = np.zeros((self.batch, self.widths[-1]), self.dtype)
        onehot[np.arange(self.batch), labels] = 1
        return X, labels, onehot

    def params(self):
        """[W0, b0, W1, b1], PyTorch's nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        rng = _rng(self.key + "p")
        ps = []
        for nin, nout in zip(self.widths[:-1], self.widths[1:]):
            bound = 1 / np.sqrt(nin)
            ps.append(rng.uniform(-bound, bound, (nin, nout)).astype(self.dtype))
            ps.append(rng.uniform(-bound, bound, nout).astype(self.dtype))
        return ps

    def loss(self, F, p, X, labels, onehot):
        h = F.relu(X @ p[0] + p[1])
        logits = h @ p[2] + p[3]
        return F.cross_entropy(logits, labels, onehot)


def cross_entropy_from_primitives(F, logits, onehot):
    """Mean cross-entropy built from exp, log, sum(dim, keepdim), mean and broadcasting.

    For systems without a cross-entropy of their own (jitgrad today). The row maximum that keeps
    log-sum-exp stable is a constant computed outside the graph (F.detached_rowmax): it cancels
    in the gradient.
    """
    z = logits - F.detached_rowmax(logits)
    lse = F.log(F.sum(F.exp(z), dim=1, keepdim=True))
    return -F.mean(F.sum(onehot * (z - lse), dim=1))


# ---- W3: per-op overhead ---------------------------------------------------------------------
class W3:
    """200 elementwise ops (100 x: y = y*1.001; y = y+0.001) on an 8-vector, then sum().backward()."""
    key = "W3"

    def __init__(self, quick=False, dtype="float64"):
        self.size = 8
        self.pairs = 5 if quick else 100
        self.ops = 2 * self.pairs + 1          # + the final sum
        self.dtype = np.dtype(dtype)
        self.describe = (f"{2 * self.pairs} elementwise ops on a {self.size}-vector + sum, "
                         f"backward, {self.dtype}")

    def data(self):
        return (_rng(self.key).standard_normal(self.size).astype(self.dtype),)

    def loss(self, F, x):
        y = x
        for _ in range(self.pairs):
            y = y * 1.001
            y = y + 0.001
        return F.sum(y)


# ---- W4: a scalar-heavy graph ----------------------------------------------------------------
class W4:
    """A graph of 10,000 ops on 0-dim tensors: y = x0; 5,000 x (y = y*w; y = y+b).

    Every op is a tape node; the leaves w and b fan out to 5,000 uses each. Forward is timed
    alone (us per op), backward alone on a freshly built graph (ns per node).
    """
    key = "W4"

    def __init__(self, quick=False, dtype="float64"):
        self.nodes = 40 if quick else 10_000
        self.dtype = np.dtype(dtype)
        self.describe = f"{self.nodes} scalar ops (y = y*w; y = y+b), 0-dim {self.dtype}"

    def data(self):
        return np.asarray(1.0, self.dtype)

    def params(self):
        return [np.asarray(0.9999, self.dtype), np.asarray(1e-4, self.dtype)]

    def loss(self, F, p, x0):
        w, b = p
        y = x0
        for _ in range(self.nodes // 2):
            y = y * w
            y = y + b
        return y


# ---- W5: a small Jacobian --------------------------------------------------------------------
class W5:
    """The 10x10 Jacobian of f(x) = tanh(x @ A + c) * x, R^10 -> R^10, float64.

    f is written so a batch of inputs (m, 10) maps row by row; that lets a system build the whole
    Jacobian from one batched forward and one backward seeded with the identity.
    """
    key = "W5"

    def __init__(self, quick=False, dtype="float64"):
        self.n = 4 if quick else 10
        self.dtype = np.dtype(dtype)
        self.describe = f"Jacobian of tanh(x @ A + c) * x, R^{self.n} -> R^{self.n}, {self.dtype}"

    def data(self):
        rng = _rng(self.key)
        x = rng.standard_normal(self.n).astype(self.dtype)
        A = (rng.standard_normal((self.n, self.n)) / np.sqrt(self.n)).astype(self.dtype)
        c = rng.standard_normal(self.n).astype(self.dtype)
        return x, A, c

    def f(self, F, x, A, c):
        return F.tanh(x @ A + c) * x

    def reference(self):
        x, A, c = self.data()
        u = np.tanh(x @ A + c)
        return np.diag(u) + (1 - u * u)[:, None] * A.T * x[:, None]


# ---- W6: an RNN cell unrolled ----------------------------------------------------------------
class W6:
    """h = tanh(x_t @ Wx + h @ Wh + b), hidden 32, input 32, batch 1, unrolled T steps;
    loss = sum(h_T); forward + backward (gradients of Wx, Wh, b), float32."""
    key = "W6"
    STEPS = (10, 100, 1000)

    def __init__(self, steps=10, quick=False, dtype="float32"):
        self.steps = min(steps, 4) if quick else steps
        self.hidden = 4 if quick else 32
        self.nin = 3 if quick else 32
        self.dtype = np.dtype(dtype)
        self.ops = 5 * steps + 1                  # 2 matmul, 2 add (+ bias broadcast), tanh
        self.describe = (f"tanh RNN cell, hidden {self.hidden}, batch 1, T={steps}, "
                         f"forward+backward, {self.dtype}")

    def data(self):
        rng = _rng(f"{self.key}x")
        xs = rng.standard_normal((self.steps, 1, self.nin)).astype(self.dtype)
        h0 = np.zeros((1, self.hidden), self.dtype)
        return xs, h0

    def params(self):
        rng = _rng(self.key + "p")
        bound = 1 / np.sqrt(self.hidden)
        return [rng.uniform(-bound, bound, (self.nin, self.hidden)).astype(self.dtype),
                rng.uniform(-bound, bound, (self.hidden, self.hidden)).astype(self.dtype),
                rng.uniform(-bound, bound, self.hidden).astype(self.dtype)]

    @staticmethod
    def cell(F, p, h, x_t):
        return F.tanh(x_t @ p[0] + h @ p[1] + p[2])

    def loss(self, F, p, xs, h0):
        """xs: a sequence of (1, nin) inputs (a list, so no system pays for indexing)."""
        h = h0
        for x_t in xs:
            h = self.cell(F, p, h, x_t)
        return F.sum(h)


# ---- W7: a physics-informed step (second derivatives by double backward) ---------------------
class W7:
    """Physics-informed MLP 1-32-32-1, tanh, batch 128: the loss is the residual of
    u'' = -pi^2 sin(pi x) on [0, 1] plus u(0)^2 + u(1)^2, with u_x and u_xx taken by two
    create_graph=True gradients; one Adam step (zero grads, forward, the two gradients, backward,
    update). float64."""
    key = "W7"

    def __init__(self, quick=False, dtype="float64"):
        self.batch = 8 if quick else 128
        self.widths = (1, 4, 4, 1) if quick else (1, 32, 32, 1)
        self.dtype = np.dtype(dtype)
        self.lr = 1e-3
        self.describe = (f"physics-informed MLP {'-'.join(map(str, self.widths))} tanh, batch "
                         f"{self.batch}, u_x and u_xx by double backward, {self.dtype}, Adam step")

    def data(self):
        """Collocation points x (batch, 1) in [0, 1], the source term f(x) and the boundary."""
        x = _rng(self.key).uniform(0, 1, (self.batch, 1))
        f = -np.pi ** 2 * np.sin(np.pi * x)
        return x.astype(self.dtype), f.astype(self.dtype), np.array([[0.0], [1.0]], self.dtype)

    def params(self):
        """[W0, b0, W1, b1, W2, b2], W of shape (out, in) as nn.Linear's, with its init."""
        rng = _rng(self.key + "p")
        ps = []
        for nin, nout in zip(self.widths[:-1], self.widths[1:]):
            bound = 1 / np.sqrt(nin)
            ps.append(rng.uniform(-bound, bound, (nout, nin)).astype(self.dtype))
            ps.append(rng.uniform(-bound, bound, nout).astype(self.dtype))
        return ps

    @staticmethod
    def u(F, p, x):
        h = x
        for i in range(0, len(p) - 2, 2):
            h = F.tanh(F.linear(h, p[i], p[i + 1]))
        return F.linear(h, p[-2], p[-1])

    def loss(self, F, p, x, f, boundary):
        """x must require grad: u_x and u_xx are gradients with respect to it."""
        u = self.u(F, p, x)
        u_x = F.grad(u, x)
        u_xx = F.grad(u_x, x)
        return F.mean((u_xx - f) ** 2) + F.mean(self.u(F, p, boundary) ** 2)


# ---- W8: LeNet-5, a small CNN training step ------------------------------------------------------
class W8:
    """LeNet-5 on 28x28 single-channel images, batch 64: conv 5x5 (1->6, padding 2), ReLU, max-pool
    2, conv 5x5 (6->16), ReLU, max-pool 2, then 400-120-84-10 with ReLU, mean cross-entropy; one SGD
    step (zero grads, forward, backward, update). float32. W8-forward and W8-backward time the
    forward (recording) and the backward of a freshly recorded graph separately."""
    key = "W8"

    def __init__(self, quick=False, dtype="float32"):
        self.batch = 4 if quick else 64
        self.dtype = np.dtype(dtype)
        self.lr = 0.05
        self.describe = f"LeNet-5 28x28x1, batch {self.batch}, {self.dtype}, SGD step"

    def data(self):
        """Images (batch, 1, 28, 28) and labels (batch,) int64 (one-hot too, as W2)."""
        rng = _rng(self.key)
        X = rng.standard_normal((self.batch, 1, 28, 28)).astype(self.dtype)
        labels = rng.integers(0, 10, self.batch)
        return X, labels, np.eye(10, dtype=self.dtype)[labels]

    SHAPES = ((6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 400), (120,), (84, 120), (84,),
              (10, 84), (10,))

    def params(self):
        """Conv and Linear weights with their bias, torch's default init bounds (1/sqrt(fan_in))."""
        rng = _rng(self.key + "p")
        ps = []
        for w, b in zip(self.SHAPES[::2], self.SHAPES[1::2]):
            bound = 1 / np.sqrt(np.prod(w[1:]))
            ps += [rng.uniform(-bound, bound, w).astype(self.dtype), rng.uniform(-bound, bound, b).astype(self.dtype)]
        return ps

    def loss(self, F, p, X, labels, onehot):
        h = F.max_pool2d(F.relu(F.conv2d(X, p[0], p[1], padding=2)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, p[2], p[3])), 2)
        h = F.flatten(h)
        h = F.relu(F.linear(h, p[4], p[5]))
        h = F.relu(F.linear(h, p[6], p[7]))
        return F.cross_entropy(F.linear(h, p[8], p[9]), labels, onehot)
