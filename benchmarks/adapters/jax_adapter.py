"""JAX: ``jax.jit`` of the whole step (loss, gradient and SGD update), synchronised with
``block_until_ready``. The first call (tracing + XLA compile) is part of the warm-up, not timed.

W4 is not run: it measures the per-op cost of an eager tape, which a compiled function does not
have (jit of a 10,000-op Python loop only measures XLA's compile time).
W6 uses ``lax.scan`` over the shared cell, the idiomatic way to write a loop under jit.
"""
from . import Case


def load(system):
    import jax
    jax.config.update("jax_enable_x64", True)     # W1, W3, W5 are float64 for every system
    return Jax(jax)


class Jax:
    def __init__(self, jax):
        import jax.numpy as jnp
        self.jax, self.jnp = jax, jnp

        class F:
            relu = staticmethod(jax.nn.relu)
            tanh = staticmethod(jnp.tanh)
            exp = staticmethod(jnp.exp)
            log = staticmethod(jnp.log)
            mean = staticmethod(jnp.mean)

            @staticmethod
            def sum(x, dim=None, keepdim=False):
                return jnp.sum(x, axis=dim, keepdims=keepdim)

            @staticmethod
            def cross_entropy(logits, labels, onehot):
                return -jnp.mean(jnp.sum(onehot * jax.nn.log_softmax(logits, axis=1), axis=1))
        self.F = F

    def _arrays(self, arrays):
        return [self.jnp.asarray(a) for a in arrays]

    def _sync(self, tree):
        return self.jax.block_until_ready(tree)

    def _train(self, wl, data):
        jax, F = self.jax, self.F
        data = self._arrays(data)

        @jax.jit
        def step(params, *data):
            g = jax.grad(lambda p: wl.loss(F, p, *data))(params)
            return [p - wl.lr * gi for p, gi in zip(params, g)], g
        state = {"p": self._arrays(wl.params())}

        def run(_):
            state["p"], state["g"] = self._sync(step(state["p"], *data))
        return Case(run, lambda: [jax.device_get(g) for g in state["g"]])

    def w1(self, wl):
        return self._train(wl, wl.data())

    def w2(self, wl):
        X, labels, onehot = wl.data()
        return self._train(wl, [X, labels, onehot])

    def w3(self, wl):
        jax = self.jax
        x = self._arrays(wl.data())[0]
        step = jax.jit(jax.grad(lambda v: wl.loss(self.F, v)))
        out = {}

        def run(_):
            out["g"] = self._sync(step(x))
        return Case(run, lambda: [jax.device_get(out["g"])])

    def w5(self, wl):
        jax = self.jax
        x, A, c = self._arrays(wl.data())
        jac = jax.jit(jax.jacrev(lambda v: wl.f(self.F, v, A, c)))
        out = {}

        def run(_):
            out["J"] = self._sync(jac(x))
        return Case(run, lambda: [jax.device_get(out["J"])], note="jit(jacrev(f))")

    def w6(self, wl):
        jax, jnp = self.jax, self.jnp
        xs, h0 = self._arrays(wl.data())
        params = self._arrays(wl.params())

        def loss(p):
            h, _ = jax.lax.scan(lambda h, x_t: (wl.cell(self.F, p, h, x_t), None), h0, xs)
            return jnp.sum(h)
        step = jax.jit(jax.grad(loss))
        out = {}

        def run(_):
            out["g"] = self._sync(step(params))
        return Case(run, lambda: [jax.device_get(g) for g in out["g"]], note="lax.scan")
