"""HIPS autograd: traces numpy calls on every call, then walks the trace backwards.

W4's forward is autograd's forward *with* tracing (``make_vjp``), its backward the returned vjp.
"""
import numpy as np

from . import Case


def load(system):
    import autograd
    import autograd.numpy as anp
    from autograd.scipy.special import logsumexp
    return Autograd(autograd, anp, logsumexp)


class Autograd:
    def __init__(self, autograd, anp, logsumexp):
        self.ag = autograd

        class F:
            tanh = staticmethod(anp.tanh)
            exp = staticmethod(anp.exp)
            log = staticmethod(anp.log)
            mean = staticmethod(anp.mean)

            @staticmethod
            def relu(x):
                return anp.maximum(x, 0.0)

            @staticmethod
            def sum(x, dim=None, keepdim=False):
                return anp.sum(x, axis=dim, keepdims=keepdim)

            @staticmethod
            def cross_entropy(logits, labels, onehot):
                logp = logits - logsumexp(logits, axis=1, keepdims=True)
                return -anp.mean(anp.sum(onehot * logp, axis=1))
        self.F = F

    def _train(self, wl, data):
        grad = self.ag.grad(lambda p: wl.loss(self.F, p, *data))
        state = {"p": wl.params()}

        def run(_):
            g = grad(state["p"])
            state["p"] = [p - wl.lr * gi for p, gi in zip(state["p"], g)]
            state["g"] = g
        return Case(run, lambda: [np.array(g) for g in state["g"]])

    def w1(self, wl):
        return self._train(wl, wl.data())

    def w2(self, wl):
        return self._train(wl, wl.data())

    def w3(self, wl):
        (x,) = wl.data()
        grad = self.ag.grad(lambda v: wl.loss(self.F, v))
        out = {}

        def run(_):
            out["g"] = grad(x)
        return Case(run, lambda: [np.array(out["g"])])

    def w4_forward(self, wl):
        params, x0 = wl.params(), wl.data()
        vjp_maker = self.ag.make_vjp(lambda p: wl.loss(self.F, p, x0))
        return Case(lambda _: vjp_maker(params), lambda: [], note="make_vjp (forward with tracing)")

    def w4_backward(self, wl):
        params, x0 = wl.params(), wl.data()
        vjp_maker = self.ag.make_vjp(lambda p: wl.loss(self.F, p, x0))
        out = {}

        def run(vjp):
            out["g"] = vjp(np.ones((), wl.dtype))
        return Case(run, lambda: [np.array(g) for g in out["g"]],
                    setup=lambda: vjp_maker(params)[0], note="the vjp returned by make_vjp")

    def w5(self, wl):
        x, A, c = wl.data()
        jac = self.ag.jacobian(lambda v: wl.f(self.F, v, A, c))
        out = {}

        def run(_):
            out["J"] = jac(x)
        return Case(run, lambda: [np.array(out["J"])], note="autograd.jacobian")

    def w6(self, wl):
        xs0, h0 = wl.data()
        xs = list(xs0)
        grad = self.ag.grad(lambda p: wl.loss(self.F, p, xs, h0))
        params = wl.params()
        out = {}

        def run(_):
            out["g"] = grad(params)
        return Case(run, lambda: [np.array(g) for g in out["g"]])
