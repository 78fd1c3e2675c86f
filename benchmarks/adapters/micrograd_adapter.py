"""micrograd: one Python ``Value`` per scalar, for W1 and W3 only (it has no tensors).

The network is micrograd's own ``nn.MLP`` with the shared initial weights copied in; the loss is
the W1 formula written the way micrograd's demo writes it (``sum`` over Python lists of Values).
"""
import numpy as np

from . import Case


def load(system):
    from micrograd.engine import Value
    from micrograd.nn import MLP
    return Micrograd(Value, MLP)


class Micrograd:
    def __init__(self, Value, MLP):
        self.Value, self.MLP = Value, MLP

    def w1(self, wl):
        Value = self.Value
        X, y = wl.data()
        ps = wl.params()
        model = self.MLP(wl.widths[0], list(wl.widths[1:]))
        # ours: h @ W + b with W (in, out); micrograd: neuron j holds column j of W and b[j]
        for layer, (W, b) in zip(model.layers, zip(ps[0::2], ps[1::2])):
            for j, neuron in enumerate(layer.neurons):
                for i, w in enumerate(neuron.w):
                    w.data = float(W[i, j])
                neuron.b.data = float(b[j])
        params = model.parameters()
        inputs = [[Value(float(v)) for v in row] for row in X]
        labels = [float(v) for v in y[:, 0]]

        def run(_):
            model.zero_grad()
            scores = [model(x) for x in inputs]
            losses = [(1 + -yi * si).relu() for yi, si in zip(labels, scores)]
            data_loss = sum(losses) * (1.0 / len(losses))
            reg_loss = wl.alpha * sum(p * p for p in params)
            loss = data_loss + reg_loss
            loss.backward()
            for p in params:
                p.data -= wl.lr * p.grad
            return loss

        def grads():
            out = []
            for layer in model.layers:
                out.append(np.array([[n.w[i].grad for n in layer.neurons]
                                     for i in range(len(layer.neurons[0].w))]))
                out.append(np.array([n.b.grad for n in layer.neurons]))
            return out
        return Case(run, grads)

    def w3(self, wl):
        (x0,) = wl.data()
        x = _Vec(self.Value(float(v)) for v in x0)

        def run(_):
            for v in x:
                v.grad = 0
            loss = wl.loss(_F, x)
            loss.backward()
            return loss
        return Case(run, lambda: [np.array([v.grad for v in x])])


class _Vec(list):
    """A list of Values with elementwise * and + by a number: enough to run W3's shared loss."""

    def __mul__(self, c):
        return _Vec([v * c for v in self])

    def __add__(self, c):
        return _Vec([v + c for v in self])


class _F:
    sum = staticmethod(sum)
