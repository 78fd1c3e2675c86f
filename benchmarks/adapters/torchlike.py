"""jitgrad and PyTorch eager: the same code, run with ``mod`` = jitgrad or torch.

jitgrad's promise is that ``import jitgrad as torch`` runs PyTorch code, so both systems share one
adapter. The only difference is cross-entropy (W2): a system without
``nn.functional.cross_entropy`` gets the composite from workloads.py, chosen in ``_F.__init__``.
"""
import weakref

import numpy as np

from . import Case
from ..workloads import cross_entropy_from_primitives


def load(system):
    if system in ("torch", "torch-compiled"):
        import torch
        torch.set_num_threads(1)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:      # already set, or parallel work already started
            pass
        return TorchLike(torch, compiled=system == "torch-compiled")
    import jitgrad
    return TorchLike(jitgrad, compiled=system == "jitgrad-compiled")


class _F:
    """The primitives the workloads call, in PyTorch's spelling."""

    def __init__(self, mod):
        self.mod = mod
        native = getattr(mod.nn.functional, "cross_entropy", None)
        if native is not None:
            self.cross_entropy = lambda logits, labels, onehot: native(logits, labels)
            self.cross_entropy_note = "nn.functional.cross_entropy"
        else:
            self.cross_entropy = lambda logits, labels, onehot: \
                cross_entropy_from_primitives(self, logits, onehot)
            self.cross_entropy_note = "cross-entropy composed from exp/log/sum/mean (no native one yet)"

    @staticmethod
    def relu(x):
        return x.relu()

    @staticmethod
    def tanh(x):
        return x.tanh()

    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def log(x):
        return x.log()

    @staticmethod
    def sum(x, dim=None, keepdim=False):
        return x.sum() if dim is None else x.sum(dim, keepdim=keepdim)

    @staticmethod
    def mean(x):
        return x.mean()

    def linear(self, x, w, b):
        return self.mod.nn.functional.linear(x, w, b)

    def conv2d(self, x, w, b, padding=0):
        return self.mod.nn.functional.conv2d(x, w, b, padding=padding)

    def max_pool2d(self, x, k):
        return self.mod.nn.functional.max_pool2d(x, k)

    @staticmethod
    def flatten(x):
        return x.flatten(1)

    def grad(self, y, x):
        """dy/dx, itself differentiable (create_graph=True), seeded with ones."""
        return self.mod.autograd.grad(y, x, grad_outputs=self.mod.ones_like(y), create_graph=True)[0]

    def detached_rowmax(self, z):
        return self.mod.from_numpy(z.detach().numpy().max(axis=1, keepdims=True))


class TorchLike:
    def __init__(self, mod, compiled=False):
        self.mod = mod
        self.F = _F(mod)
        self.compiled = compiled

    def _step(self, run, params):
        """A training step as a Case: compiled with mod.compile for the "-compiled" systems (the
        first call, untimed, traces it); the note says if jitgrad replays it or runs it eagerly."""
        if not self.compiled:
            return Case(run, self._grads(params))
        step = self.mod.compile(run)
        case = Case(step, self._grads(params))
        if self.mod.__name__ == "jitgrad":
            noted = weakref.ref(case)   # (not case: a cycle would keep a dropped model alive
                                        # until a collection, as a sweep's user code does not)

            def first():
                import warnings
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    out = step(None)
                eager = [v for v in step.traces.values() if isinstance(v, str)]
                noted().note = f"runs eagerly: {eager[0]}" if eager else "replayed"
                return out
            case.once = first
        return case

    def fresh(self):
        """Start a case as a new process would. jitgrad's tape is process-wide and its arena
        stays float64 once a float64 graph was recorded (until a compaction finds nothing
        alive): without this, W2 (float32) would run on the float64 arena W1 left behind."""
        if self.mod.__name__ == "jitgrad":
            from jitgrad.engine.tape import TAPE
            with TAPE.lock:
                TAPE.compact()

    # ---- helpers ---------------------------------------------------------------------------
    def tensor(self, a, requires_grad=False):
        t = self.mod.from_numpy(np.array(a, copy=True))
        return t.requires_grad_() if requires_grad else t

    def _params(self, wl):
        return [self.tensor(p, True) for p in wl.params()]

    def _sgd(self, params, lr):
        with self.mod.no_grad():
            for p in params:
                p -= lr * p.grad

    @staticmethod
    def _grads(params):
        return lambda: [p.grad.numpy().copy() for p in params]

    def _train_step(self, wl, data):
        params = self._params(wl)
        F = self.F

        def run(_):
            for p in params:
                p.grad = None
            loss = wl.loss(F, params, *data)
            loss.backward()
            self._sgd(params, wl.lr)
            return loss
        return run, params

    # ---- workloads -------------------------------------------------------------------------
    def w1(self, wl):
        run, params = self._train_step(wl, [self.tensor(a) for a in wl.data()])
        return self._step(run, params)

    def w2(self, wl):
        X, labels, onehot = wl.data()
        run, params = self._train_step(wl, [self.tensor(X), self.tensor(labels), self.tensor(onehot)])
        case = self._step(run, params)
        case.note = case.note or self.F.cross_entropy_note
        return case

    def w3(self, wl):
        (x0,) = wl.data()
        x = self.tensor(x0, True)
        F = self.F

        def run(_):
            x.grad = None
            loss = wl.loss(F, x)
            loss.backward()
            return loss
        return self._step(run, [x])

    def _w4_parts(self, wl):
        return self._params(wl), self.tensor(wl.data())

    def w4_forward(self, wl):
        params, x0 = self._w4_parts(wl)
        return Case(lambda _: wl.loss(self.F, params, x0), lambda: [])

    def w4_forward_nograd(self, wl):
        params, x0 = self._w4_parts(wl)

        def run(_):
            with self.mod.no_grad():
                return wl.loss(self.F, params, x0)
        return Case(run, lambda: [])

    def w4_step(self, wl):
        """Forward and backward of the whole W4 graph, one call (what compiled replay runs)."""
        params, x0 = self._w4_parts(wl)

        def run(_):
            for p in params:
                p.grad = None
            y = wl.loss(self.F, params, x0)
            y.backward()
            return y
        return self._step(run, params)

    def w4_backward(self, wl):
        params, x0 = self._w4_parts(wl)

        def setup():
            for p in params:
                p.grad = None
            return wl.loss(self.F, params, x0)
        return Case(lambda y: y.backward(), self._grads(params), setup=setup)

    def w5(self, wl):
        """The Jacobian with the system's own API: torch.autograd.functional.jacobian, or for
        jitgrad (which has none) one autograd.grad per output row on a retained graph."""
        x0, A0, c0 = wl.data()
        A, c = self.tensor(A0), self.tensor(c0)
        out = {}
        jacobian = getattr(getattr(self.mod.autograd, "functional", None), "jacobian", None)
        if jacobian is not None:
            x = self.tensor(x0)

            def run(_):
                out["J"] = jacobian(lambda v: wl.f(self.F, v, A, c), x)
                return out["J"]
            return Case(run, lambda: [out["J"].numpy().copy()], note="autograd.functional.jacobian")
        x = self.tensor(x0, True)
        eye = np.eye(wl.n, dtype=wl.dtype)
        seeds = [self.tensor(e) for e in eye]
        grad = self.mod.autograd.grad

        def run(_):
            y = wl.f(self.F, x, A, c)
            out["J"] = np.stack([grad(y, x, grad_outputs=s, retain_graph=True)[0].numpy()
                                 for s in seeds])
            return out["J"]
        return Case(run, lambda: [out["J"].copy()],
                    note=f"{wl.n} x autograd.grad(retain_graph=True), one per output row")

    def w5_batched(self, wl):
        """One forward on n copies of x and one backward seeded with the identity: row i of the
        result is e_i^T J. Building the batch is part of the timed call."""
        x0, A0, c0 = wl.data()
        A, c = self.tensor(A0), self.tensor(c0)
        eye = self.tensor(np.eye(wl.n, dtype=wl.dtype))
        grad = self.mod.autograd.grad
        out = {}

        def run(_):
            xb = self.tensor(np.broadcast_to(x0, (wl.n, wl.n)), True)
            out["J"] = grad(wl.f(self.F, xb, A, c), xb, grad_outputs=eye)[0]
            return out["J"]
        return Case(run, lambda: [out["J"].numpy().copy()],
                    note="batched forward + one backward seeded with I")

    def w6(self, wl):
        xs0, h00 = wl.data()
        xs = [self.tensor(x) for x in xs0]
        h0 = self.tensor(h00)
        params = self._params(wl)

        def run(_):
            for p in params:
                p.grad = None
            loss = wl.loss(self.F, params, xs, h0)
            loss.backward()
            return loss
        return Case(run, self._grads(params))

    def w7(self, wl):
        """One Adam step of the physics-informed MLP (torch.optim.Adam / jitgrad.optim.Adam)."""
        x0, f0, b0 = wl.data()
        x, f, boundary = self.tensor(x0, True), self.tensor(f0), self.tensor(b0)
        params = self._params(wl)
        opt = self.mod.optim.Adam(params, lr=wl.lr)

        def run(_):
            opt.zero_grad()
            loss = wl.loss(self.F, params, x, f, boundary)
            loss.backward()
            opt.step()
            return loss
        return self._step(run, params)

    def _w8_parts(self, wl):
        X, labels, onehot = wl.data()
        return self._params(wl), [self.tensor(X), self.tensor(labels), self.tensor(onehot)]

    def w8(self, wl):
        params, data = self._w8_parts(wl)
        run, params = self._train_step(wl, data)
        case = self._step(run, params)
        case.note = case.note or self.F.cross_entropy_note
        return case

    def w8_forward(self, wl):
        params, data = self._w8_parts(wl)
        return Case(lambda _: wl.loss(self.F, params, *data), lambda: [])

    def w8_backward(self, wl):
        params, data = self._w8_parts(wl)

        def setup():
            for p in params:
                p.grad = None
            return wl.loss(self.F, params, *data)
        return Case(lambda y: y.backward(), self._grads(params), setup=setup)
