"""autograd.Function: both styles, the ctx API, errors as torch's, double backward, and the engine's
pause at Python nodes; against PyTorch where installed, hand-computed values always."""
import warnings

import numpy as np
import pytest

import jitgrad as torch
from jitgrad.autograd import Function, NestedIOFunction, once_differentiable
from jitgrad.engine.tape import TAPE


@pytest.fixture
def pt():
    return pytest.importorskip("torch")


def _functions(lib):
    """The same custom Functions written against lib (jitgrad or torch)."""

    class StraightThrough(lib.autograd.Function):
        """Binarize in forward, identity gradient in backward; the threshold gets None."""
        @staticmethod
        def forward(ctx, x, threshold):
            return (x > threshold).to(x.dtype)

        @staticmethod
        def backward(ctx, g):
            return g, None

    class MyReLU(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            mask = x > 0
            ctx.save_for_backward(mask)
            return x.clamp(min=0)

        @staticmethod
        def backward(ctx, g):
            mask, = ctx.saved_tensors
            return g * mask

    class LegendrePolynomial3(lib.autograd.Function):
        """PyTorch's "Learning PyTorch with examples": P3(x) = (5x^3 - 3x) / 2."""
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    class Cube(lib.autograd.Function):
        """A backward written in ops: differentiable again (create_graph)."""
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * 3 * x ** 2

    class Exp(lib.autograd.Function):
        """Saves its own output (the new style: setup_context)."""
        @staticmethod
        def forward(x):
            return x.exp()

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)

        @staticmethod
        def backward(ctx, g):
            out, = ctx.saved_tensors
            return g * out

    class SplitScale(lib.autograd.Function):
        """Two outputs, a non-tensor argument and keyword-free extra state on ctx."""
        @staticmethod
        def forward(ctx, x, y, k):
            ctx.k = k
            ctx.save_for_backward(x, y)
            return x * y * k, x + y

        @staticmethod
        def backward(ctx, g1, g2):
            x, y = ctx.saved_tensors
            return g1 * y * ctx.k + g2, g1 * x * ctx.k + g2, None

    return dict(ste=StraightThrough, relu=MyReLU, legendre=LegendrePolynomial3, cube=Cube, exp=Exp,
                split=SplitScale)


J = _functions(torch)


def _pair(pt, a, dtype="float64"):
    return (torch.tensor(a, dtype=getattr(torch, dtype), requires_grad=True),
            pt.tensor(a, dtype=getattr(pt, dtype), requires_grad=True))


def test_straight_through_estimator_passes_the_gradient_and_gives_none_to_the_threshold():
    x = torch.tensor([-1.0, 0.2, 0.7, 2.0], requires_grad=True)
    y = J["ste"].apply(x, 0.5)
    np.testing.assert_array_equal(y.numpy(force=True), [0, 0, 1, 1])
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 2, 3, 4])       # identity, by hand
    assert y.grad_fn.name() == "StraightThroughBackward"


def test_straight_through_matches_torch(pt):
    T = _functions(pt)
    a = [-1.0, 0.2, 0.7, 2.0]
    x, tx = _pair(pt, a)
    w = [1.0, -2.0, 3.0, 0.5]
    (J["ste"].apply(x, 0.5) * torch.tensor(w, dtype=torch.float64)).sum().backward()
    (T["ste"].apply(tx, 0.5) * pt.tensor(w, dtype=pt.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_relu_with_a_saved_mask_matches_the_builtin_relu():
    a = np.array([[-1.5, 0.5, 2.0], [0.25, -0.1, 3.0]])
    x = torch.tensor(a, requires_grad=True)
    x2 = torch.tensor(a, requires_grad=True)
    (J["relu"].apply(x) ** 2).sum().backward()
    (torch.relu(x2) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.maximum(a, 0), rtol=1e-6)


def test_relu_with_a_saved_mask_matches_torch(pt):
    T = _functions(pt)
    a = [[-1.5, 0.5, 2.0], [0.25, -0.1, 3.0]]
    x, tx = _pair(pt, a)
    (J["relu"].apply(x) * x).sum().backward()
    (T["relu"].apply(tx) * tx).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def _fit_legendre(lib, P3, steps=40):
    """The tutorial's loop: y = a + b * P3(c + d * x) fitted to sin(x) by gradient descent."""
    dtype = lib.float64
    x = lib.linspace(-np.pi, np.pi, 200, dtype=dtype)
    y = lib.sin(x)
    a = lib.full((), 0.0, dtype=dtype, requires_grad=True)
    b = lib.full((), -1.0, dtype=dtype, requires_grad=True)
    c = lib.full((), 0.0, dtype=dtype, requires_grad=True)
    d = lib.full((), 0.3, dtype=dtype, requires_grad=True)
    lr = 5e-6
    losses = []
    for _ in range(steps):
        y_pred = a + b * P3.apply(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        losses.append(loss.item())
        loss.backward()
        with lib.no_grad():
            for p in (a, b, c, d):
                p -= lr * p.grad
                p.grad = None
    return losses, [p.item() for p in (a, b, c, d)]


def test_legendre_polynomial_example_learns_and_its_gradient_is_p3_prime():
    losses, _ = _fit_legendre(torch, J["legendre"])
    assert losses[-1] < losses[0]
    x = torch.tensor([-0.9, 0.1, 0.6], dtype=torch.float64, requires_grad=True)
    J["legendre"].apply(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.5 * (5 * x.detach().numpy() ** 2 - 1))


def test_legendre_polynomial_example_matches_torch(pt):
    got, params = _fit_legendre(torch, J["legendre"])
    want, tparams = _fit_legendre(pt, _functions(pt)["legendre"])
    np.testing.assert_allclose(got, want, rtol=1e-10)
    np.testing.assert_allclose(params, tparams, rtol=1e-10, atol=1e-12)


def test_double_backward_through_a_function_whose_backward_is_ops():
    x = torch.tensor([0.5, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(J["cube"].apply, (x,))
    assert torch.autograd.gradgradcheck(J["cube"].apply, (x,))
    y = J["cube"].apply(x).sum()
    g, = torch.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    gg, = torch.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), 6 * x.detach().numpy())


def test_double_backward_matches_torch(pt):
    T = _functions(pt)
    x, tx = _pair(pt, [0.5, -1.2, 2.0])
    for lib, F, v in ((torch, J, x), (pt, T, tx)):
        y = (F["cube"].apply(v) * F["exp"].apply(v)).sum()
        g, = lib.autograd.grad(y, v, create_graph=True)
        (g * g).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def test_setup_context_style_saves_its_output():
    x = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64, requires_grad=True)
    y = J["exp"].apply(x)
    assert torch.autograd.gradcheck(J["exp"].apply, (x,))
    (y * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp(x.detach().numpy()))


def test_several_outputs_a_non_tensor_argument_and_next_functions():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([3.0, -1.0], requires_grad=True)
    y = w * 1                                    # a non-leaf input
    p, s = J["split"].apply(x, y, 2.0)
    assert p.grad_fn is s.grad_fn and p.grad_fn.name() == "SplitScaleBackward"
    assert repr(p).endswith("grad_fn=<SplitScaleBackward>)")
    nf = p.grad_fn.next_functions
    assert len(nf) == 2 and type(nf[0][0]).__name__ == "AccumulateGrad"
    assert nf[0][0].variable is x and nf[1][0].name() == "MulBackward0"
    (p.sum() + 3 * s.sum()).backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 * 2 + 3, -1 * 2 + 3])   # y * k + 3
    np.testing.assert_allclose(w.grad.numpy(), [1 * 2 + 3, 2 * 2 + 3])    # x * k + 3


def test_an_output_no_gradient_reaches_is_zeros_or_none():
    seen = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            seen.append(g2)
            return g1 * 2, None

    x = torch.ones(3, requires_grad=True)
    Two.apply(x, True)[0].sum().backward()
    Two.apply(x, False)[0].sum().backward()
    np.testing.assert_array_equal(seen[0].numpy(), np.zeros(3))
    assert seen[1] is None
    np.testing.assert_array_equal(x.grad.numpy(), [4, 4, 4])


def test_needs_input_grad_non_differentiable_outputs_and_no_grad():
    log = []

    class F(Function):
        @staticmethod
        def forward(ctx, x, y, k):
            log.append(ctx.needs_input_grad)
            idx = (x > 0).long()
            ctx.mark_non_differentiable(idx)
            return x + y, idx

        @staticmethod
        def backward(ctx, g, gi):
            log.append(gi)
            return g, g, None

    x = torch.tensor([1.0, -1.0], requires_grad=True)
    out, idx = F.apply(x, torch.ones(2), 3)
    assert log[0] == (True, False, False)
    assert not idx.requires_grad and out.requires_grad
    out.sum().backward()
    np.testing.assert_array_equal(log[1].numpy(), [0, 0])       # zeros for the integer output
    with torch.no_grad():
        r, _ = F.apply(x, torch.ones(2), 3)
    assert not r.requires_grad and r.grad_fn is None


def test_returning_an_input_gives_an_alias_and_mark_dirty_rebases_it():
    class Id(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return 2 * g

    class AddOne(Function):
        @staticmethod
        def forward(ctx, x):
            x.add_(1)
            ctx.mark_dirty(x)
            return x

        @staticmethod
        def backward(ctx, g):
            return 3 * g

    x = torch.tensor([1.0, 2.0], requires_grad=True)
    r = Id.apply(x)
    assert r is not x and r.grad_fn.name() == "IdBackward" and r.data_ptr() == x.data_ptr()
    h = x * 1
    out = AddOne.apply(h)
    assert out is h and h.grad_fn.name() == "AddOneBackward" and h._version == 2    # as torch
    np.testing.assert_array_equal(h.detach().numpy(), [2, 3])
    (r.sum() + out.sum()).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [5, 5])
    with pytest.raises(RuntimeError, match="a leaf Variable that requires grad has been used in an "
                                           "in-place operation."):
        AddOne.apply(x)


def test_gradient_of_an_expanded_shape_is_summed_and_dtype_cast():
    class Sum(Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g.expand(2, 3).double()

    x = torch.ones(3, requires_grad=True)
    Sum.apply(x).backward()
    assert x.grad.dtype == torch.float32
    np.testing.assert_array_equal(x.grad.numpy(), [2, 2, 2])


class _Bad(Function):
    result = None

    @staticmethod
    def forward(ctx, x, k):
        return x * k

    @staticmethod
    def backward(ctx, g):
        return _Bad.result(g)


@pytest.mark.parametrize("result,error,msg", [
    (lambda g: g, RuntimeError, "function _BadBackward returned an incorrect number of gradients "
                                "(expected 2, got 1)"),
    (lambda g: (g, g), RuntimeError, "function _BadBackward returned a gradient different than None "
                                     "at position 2, but the corresponding forward input was not a "
                                     "Variable"),
    (lambda g: (g[:2], None), RuntimeError, "Function _BadBackward returned an invalid gradient at "
                                            "index 0 - got [2] but expected shape compatible with [3]"),
    (lambda g: ("a", None), RuntimeError, "expected Variable or None (got str)"),
    (lambda g: (g, None, None), None, None),          # trailing Nones are dropped, as torch does
])
def test_backward_result_errors_are_torchs(result, error, msg):
    _Bad.result = staticmethod(result)
    x = torch.ones(3, requires_grad=True)
    y = _Bad.apply(x, 2.0).sum()
    if error is None:
        y.backward()
        np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 1])
    else:
        with pytest.raises(error) as e:
            y.backward()
        assert str(e.value) == msg
    (x * 2).sum().backward()                      # the engine stays usable


def test_backward_result_errors_match_torch(pt):
    class G(pt.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g[:2], None

    class JG(Function):
        forward = G.forward

        @staticmethod
        def backward(ctx, g):
            return g[:2], None

    with pytest.raises(RuntimeError) as te:
        G.apply(pt.ones(3, requires_grad=True), 2.0).sum().backward()
    with pytest.raises(RuntimeError) as je:
        JG.apply(torch.ones(3, requires_grad=True), 2.0).sum().backward()
    assert str(je.value) == str(te.value).replace("GBackward", "JGBackward")


def test_saved_tensors_after_backward_and_a_second_backward_raise():
    x = torch.ones(3, requires_grad=True)
    y = J["cube"].apply(x)
    y.sum().backward(retain_graph=True)
    assert len(y.grad_fn.saved_tensors) == 1
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [6, 6, 6])
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.grad_fn.saved_tensors
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        y.sum().backward()


def test_a_saved_tensor_modified_in_place_is_refused():
    x = torch.ones(3, requires_grad=True)
    h = x * 1
    y = J["cube"].apply(h)
    with torch.no_grad():
        h.add_(1)
    msg = ("one of the variables needed for gradient computation has been modified by an inplace "
           "operation: [jitgrad.FloatTensor [3]], which is output 0 of Mul, is at version 1; "
           "expected version 0 instead.")
    with pytest.raises(RuntimeError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.grad_fn.saved_tensors


def test_unimplemented_and_legacy_uses_raise_as_torch():
    class NoBackward(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

    class NoForward(Function):
        pass

    x = torch.ones(2, requires_grad=True)
    with pytest.raises(NotImplementedError, match="You must implement either the backward or vjp "
                                                  "method for your custom autograd.Function"):
        NoBackward.apply(x).sum().backward()
    with pytest.raises(NotImplementedError, match="You must implement the forward function"):
        NoForward.apply(x)
    with pytest.warns(DeprecationWarning, match="should not be instantiated"):
        f = NoBackward()
    with pytest.raises(RuntimeError, match="Legacy autograd function with non-static forward"):
        f(x)


def test_once_differentiable_refuses_a_second_differentiation():
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            x, = ctx.saved_tensors
            return 2 * g * x

    x = torch.tensor([1.0, 3.0], requires_grad=True)
    Square.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 6])
    g, = torch.autograd.grad(Square.apply(x).sum(), x, create_graph=True)
    assert not g.requires_grad            # as torch: the seed needs no grad, nothing to refuse
    v = torch.ones(2, requires_grad=True)
    g, = torch.autograd.grad(Square.apply(x), x, v, create_graph=True)
    assert g.requires_grad and g.grad_fn.name() == "Error"
    with pytest.raises(RuntimeError, match="trying to differentiate twice a function that was "
                                           "marked with @once_differentiable"):
        g.sum().backward()


def test_nested_io_function_legacy_interface():
    class MulAdd(NestedIOFunction):
        def forward_extended(self, a, b):
            self.save_for_backward(a, b)
            return a * b, a + b

        def backward_extended(self, g1, g2):
            a, b = self.saved_tensors
            return g1 * b + g2, g1 * a + g2

    a = torch.tensor([1.0, 2.0], requires_grad=True)
    b = torch.tensor([3.0, 5.0], requires_grad=True)
    p, s = MulAdd()(a, b)
    assert p.grad_fn.name() == "MulAddBackward"
    np.testing.assert_array_equal(p.detach().numpy(), [3, 10])
    (p.sum() + s.sum()).backward()
    np.testing.assert_array_equal(a.grad.numpy(), [4, 6])
    np.testing.assert_array_equal(b.grad.numpy(), [2, 3])


def test_a_backward_inside_a_backward_and_functions_between_compiled_nodes():
    """A checkpoint-style Function recomputes its forward and runs a backward of its own while
    the outer replay is paused: both keep their own work buffers."""
    class Checkpoint(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x.exp() * x).sum(-1)

        @staticmethod
        def backward(ctx, g):
            x, = ctx.saved_tensors
            with torch.enable_grad():
                xx = x.detach().requires_grad_()
                y = (xx.exp() * xx).sum(-1)
                gx, = torch.autograd.grad(y, xx, g)
            return gx

    a = np.array([[0.1, -0.4, 0.3], [1.0, 0.5, -2.0]])
    x = torch.tensor(a, requires_grad=True)
    h = x * 2
    out = (Checkpoint.apply(h) ** 2 + J["legendre"].apply(h.sum(-1))).sum()
    out.backward()
    x2 = torch.tensor(a, requires_grad=True)
    h2 = x2 * 2
    ref = ((h2.exp() * h2).sum(-1) ** 2 + 0.5 * (5 * h2.sum(-1) ** 3 - 3 * h2.sum(-1))).sum()
    ref.backward()
    np.testing.assert_allclose(x.grad.numpy(), x2.grad.numpy(), rtol=1e-6)


def test_a_graph_pauses_only_at_python_nodes(monkeypatch):
    calls = []
    pause = TAPE.on_pause
    monkeypatch.setattr(TAPE, "on_pause", lambda *a: calls.append(a[0]) or pause(*a))
    x = torch.ones(4, requires_grad=True)
    ((x * 2).exp() * 3).sum().backward()
    assert calls == []
    (J["cube"].apply((x * 2).exp()) * 3).sum().backward()
    assert len(calls) == 1


def test_a_function_in_a_float64_graph_and_an_error_inside_backward():
    class Boom(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 1

        @staticmethod
        def backward(ctx, g):
            raise ValueError("boom")

    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="boom"):
        (Boom.apply(x) * x).sum().backward()
    y = J["cube"].apply(x * x)
    y.sum().backward()
    assert x.grad.dtype == torch.float64
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.detach().numpy() ** 5)


def test_python_nodes_leave_with_their_rows():
    x = torch.ones(3, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = J["cube"].apply(x * 2)
    serial = y.grad_fn._serial
    assert serial in TAPE.py_nodes
    del y
    with TAPE.lock:
        TAPE.compact()
    assert serial not in TAPE.py_nodes


def test_the_tutorials_autograd_imports():
    from jitgrad.autograd import (Variable, Function, NestedIOFunction, gradcheck,  # noqa: F401
                                  gradgradcheck, no_grad, enable_grad, set_grad_enabled,
                                  detect_anomaly, set_detect_anomaly, profiler)
    from jitgrad.autograd.function import FunctionCtx, once_differentiable  # noqa: F401
    from jitgrad.utils.hooks import RemovableHandle
    x = torch.ones(2, requires_grad=True)
    assert isinstance(x.register_hook(lambda g: None), RemovableHandle)
    assert profiler.record_function is torch.profiler.record_function


def test_an_output_a_function_saved_written_in_place_names_the_function():
    """torch's in-place error names the Function whose output it was (its class's name)."""
    class Exp(Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y
    y = Exp.apply(torch.randn(3, requires_grad=True))
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"\[jitgrad.FloatTensor \[3\]\], which is output 0 of "
                                           r"Exp, is at version 1; expected version 0"):
        y.sum().backward()
