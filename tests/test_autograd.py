"""PyTorch's autograd semantics, each with the exact error text."""
import threading

import numpy as np
import pytest

import jitgrad as torch
from jitgrad.autograd import Variable


def test_leaf_grad_accumulates_and_resets():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    assert x.grad is None and x.is_leaf
    (x * x).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])
    x.grad.zero_()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])


def test_non_leaf_grad_warns_and_retain_grad_populates():
    x = torch.ones(3, requires_grad=True)
    y = x * 2
    assert not y.is_leaf and y.requires_grad
    z = y.sum()
    with pytest.warns(UserWarning, match=r"The \.grad attribute of a Tensor that is not a leaf Tensor "
                                         r"is being accessed"):
        assert y.grad is None
    y2 = x * 3
    y2.retain_grad()
    assert y2.retains_grad
    (y2 * y2).sum().backward()
    np.testing.assert_allclose(y2.grad.numpy(), [6.0, 6.0, 6.0])
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 20.0, 20.0])   # 18 + 2


def test_backward_vector_jacobian_product():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * x
    y.backward(torch.tensor([0.1, 1.0, 0.0001]))
    np.testing.assert_allclose(x.grad.numpy(), [0.2, 4.0, 0.0006], rtol=1e-6)


def test_make_grads_errors():
    x = torch.ones(2, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="^grad can be implicitly created only for scalar outputs$"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match=r"^Mismatch in shape: grad_output\[0\] has a shape of "
                                           r"jitgrad\.Size\(\[3\]\) and output\[0\] has a shape of "
                                           r"jitgrad\.Size\(\[2, 2\]\)\.$"):
        (x * 2).backward(torch.ones(3))
    with pytest.raises(TypeError, match="gradients can be either Tensors or None, but got int"):
        torch.autograd.backward([x * 2], [3])
    with pytest.raises(RuntimeError, match="^element 0 of tensors does not require grad and does "
                                           "not have a grad_fn$"):
        torch.ones(2).sum().backward()


def test_backward_twice_error_and_retain_graph():
    x = torch.ones(3, requires_grad=True)
    y = (x ** 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0, 4.0])
    with pytest.raises(RuntimeError) as e:
        y.backward()
    assert str(e.value) == (
        "Trying to backward through the graph a second time (or directly access saved tensors after "
        "they have already been freed). Saved intermediate values of the graph are freed when you "
        "call .backward() or autograd.grad(). Specify retain_graph=True if you need to backward "
        "through the graph a second time or if you need to access saved tensors after calling "
        "backward.")


def test_graph_without_saved_tensors_can_be_replayed():
    x = torch.ones(3, requires_grad=True)
    y = (x + 2).sum()          # AddBackward0 and SumBackward0 save no tensors
    y.backward()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])


def test_separate_graphs_on_one_tape():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    loss1 = (x * x).sum()
    loss2 = (x ** 3).sum()     # recorded before loss1's backward
    loss1.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    x.grad = None
    loss2.backward()           # untouched by loss1's backward freeing its own graph
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])


def test_shared_subgraph_is_freed_for_the_second_root():
    x = torch.ones(2, requires_grad=True)
    y = x.exp()
    a, b = y.sum(), y.mean()
    a.backward()
    with pytest.raises(RuntimeError, match="Trying to backward through the graph a second time"):
        b.backward()


def test_autograd_grad_and_allow_unused():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    w = torch.tensor([3.0, 4.0], requires_grad=True)
    y = (x * w).sum()
    gx, gw = torch.autograd.grad(y, [x, w], retain_graph=True)
    np.testing.assert_allclose(gx.numpy(), [3.0, 4.0])
    np.testing.assert_allclose(gw.numpy(), [1.0, 2.0])
    assert x.grad is None and w.grad is None
    q = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^The differentiated Tensor at index 1 appears to not "
                                           r"have been used in the graph\. Set allow_unused=True if "
                                           r"this is the desired behavior\.$"):
        torch.autograd.grad(y, [x, q], retain_graph=True)
    gx, gq = torch.autograd.grad(y, [x, q], allow_unused=True, retain_graph=True)
    assert gq is None
    (gy,) = torch.autograd.grad(y, [x * 1], allow_unused=True)   # not an ancestor
    assert gy is None


def test_autograd_grad_of_non_leaf():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = torch.autograd.grad(y, h)
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])


def test_functional_backward_with_several_roots():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    a, b = x * 2, x * x
    torch.autograd.backward([a, b], [torch.ones(2), torch.tensor([1.0, 10.0])])
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 42.0])


def test_backward_inputs_restricts_accumulation():
    x = torch.ones(2, requires_grad=True)
    w = torch.ones(2, requires_grad=True)
    (x * w * 3).sum().backward(inputs=[w])
    assert x.grad is None
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 3.0])


def test_variable_returns_tensor():
    v = Variable(torch.ones(2), requires_grad=True)
    assert isinstance(v, torch.Tensor) and v.requires_grad and v.is_leaf
    assert not Variable(torch.ones(2)).requires_grad


def test_requires_grad_rules():
    with pytest.raises(RuntimeError, match="^only Tensors of floating point dtype can require gradients$"):
        torch.ones(2, dtype=torch.long).requires_grad_()
    with pytest.raises(RuntimeError, match="only Tensors of floating point dtype"):
        torch.tensor([1, 2], requires_grad=True)
    x = torch.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf variables"):
        (x * 2).requires_grad_(False)
    assert (torch.ones(2) > 0).requires_grad is False


def test_detach_shares_storage_and_no_grad_stops_recording():
    x = torch.ones(3, requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d.numpy()[0] = 5.0
    assert x.detach().numpy()[0] == 5.0
    with torch.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    h = x * 2
    hd = h.detach()
    assert hd.is_leaf and not hd.requires_grad
    h.detach_()
    assert h.is_leaf and h.grad_fn is None


def test_numpy_shares_memory_and_refuses_requires_grad():
    a = np.arange(3.0)
    t = torch.from_numpy(a)
    a[0] = 7
    assert t[0].item() == 7
    assert np.shares_memory(t.numpy(), a)
    with pytest.raises(RuntimeError, match=r"^Can't call numpy\(\) on Tensor that requires grad\. "
                                           r"Use tensor\.detach\(\)\.numpy\(\) instead\.$"):
        torch.ones(2, requires_grad=True).numpy()


def test_grad_modes_nest_decorate_and_are_thread_local():
    x = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        assert not torch.is_grad_enabled()
        with torch.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    assert torch.is_grad_enabled()

    @torch.no_grad()
    def f():
        return x * 2
    assert not f().requires_grad and torch.is_grad_enabled()

    torch.set_grad_enabled(False)
    assert not (x * 2).requires_grad
    torch.set_grad_enabled(True)
    with torch.set_grad_enabled(False):
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()

    seen = []
    with torch.no_grad():
        th = threading.Thread(target=lambda: seen.append(torch.is_grad_enabled()))
        th.start()
        th.join()
    assert seen == [True]


def test_threads_record_and_backward_concurrently():
    errors, results = [], {}

    def work(k):
        try:
            w = torch.tensor([float(k + 1)], requires_grad=True)
            for _ in range(200):
                loss = (w * w * 3).sum()
                w.grad = None
                loss.backward()
                assert abs(w.grad.item() - 6 * (k + 1)) < 1e-4
            results[k] = w.grad.item()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert results == {k: 6.0 * (k + 1) for k in range(4)}


def test_inplace_on_leaf_requiring_grad_raises():
    x = torch.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="^a leaf Variable that requires grad is being used in an "
                                           "in-place operation.$"):
        x += 1
    with torch.no_grad():
        x += 1            # how optimizers update parameters
        x.mul_(2)
    np.testing.assert_allclose(x.detach().numpy(), [4.0, 4.0, 4.0])


@pytest.mark.parametrize("op", ["sin", "tan_of_output", "silu", "clamp", "atan2", "logaddexp"])
def test_an_input_its_formula_reads_modified_in_place_is_refused(op):
    """Ops saving their operands (saves_reads) refuse a backward after the operand was written in
    place, as PyTorch's saved tensors do; the message names the operand's node after the write."""
    fn = {"sin": lambda t: t.sin(), "tan_of_output": lambda t: t.tan(), "silu": torch.nn.functional.silu,
          "clamp": lambda t: t.clamp(-0.5, 0.5), "atan2": lambda t: torch.atan2(t, t + 1),
          "logaddexp": lambda t: torch.logaddexp(t, t * 2)}[op]
    b = torch.ones(3, requires_grad=True) * 1
    c = fn(b)
    if op == "tan_of_output":     # tan saves its output, not b: writing b is harmless, writing c not
        b.add_(1)
        c.sum().backward(retain_graph=True)
        b, c = c, c * 1
        b.mul_(2)
        with pytest.raises(RuntimeError, match="output 0 of Tan, is at version 1; expected version 0"):
            c.sum().backward()
        return
    b.add_(1)
    with pytest.raises(RuntimeError, match="output 0 of Add, is at version 1; expected version 0"):
        c.sum().backward()


def test_modified_saved_tensor_raises_version_error():
    a = torch.ones(3, requires_grad=True)
    b = a * 1
    c = b * b              # saves b
    b.add_(1)
    with pytest.raises(RuntimeError) as e:
        c.sum().backward()
    assert str(e.value).startswith(      # (b's node after the write names it, as in PyTorch)
        "one of the variables needed for gradient computation has been modified by an inplace "
        "operation: [jitgrad.FloatTensor [3]], which is output 0 of Add, is at version 1; expected "
        "version 0 instead.")

    e1 = a.exp()           # saves its output
    e1.mul_(2)
    with pytest.raises(RuntimeError, match=r"output 0 of Exp, is at version 1; expected version 0"):
        e1.sum().backward()

    d = a.sigmoid()
    w = torch.ones(3, requires_grad=True)
    p = d * w              # saves w
    with torch.no_grad():
        w.mul_(2)          # an optimizer step between forward and backward
    with pytest.raises(RuntimeError, match=r"\[jitgrad.FloatTensor \[3\]\] is at version 1; "
                                           r"expected version 0 instead"):
        p.sum().backward()


@pytest.mark.parametrize("op", ["where", "masked_fill", "masked_fill_value", "masked_fill_"])
@pytest.mark.parametrize("create_graph", [False, True])
def test_a_condition_modified_in_place_is_refused(op, create_graph):
    """where and masked_fill save their condition, as PyTorch's WhereBackward0 and
    MaskedFillBackward0/1 do: writing it before the backward is refused, with PyTorch's message
    (its type named CPUBoolType: bool has no legacy tensor type name); a new condition is not."""
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = torch.tensor(5.0, requires_grad=True)
    fn = {"where": lambda c: torch.where(c, x, x * 2), "masked_fill": lambda c: x.masked_fill(c, 0.0),
          "masked_fill_value": lambda c: x.masked_fill(c, v), "masked_fill_": lambda c: (x * 1).masked_fill_(c, 0.0)}[op]
    c = torch.tensor([True, False, True])
    out = fn(c)
    c[1] = True
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation: \[CPUBoolType \[3\]\] is at "
                                           r"version 1; expected version 0 instead"):
        torch.autograd.grad(out.sum(), x, create_graph=create_graph)
    out = fn(c)             # recorded after the write: c as it is now
    (gx,) = torch.autograd.grad(out.sum(), x, create_graph=create_graph)
    np.testing.assert_array_equal(gx.detach().numpy(), [1.0, 1.0, 1.0] if op == "where" else [0.0, 0.0, 0.0])


def test_inplace_on_non_leaf_is_recorded():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y += x                 # y = 3x, recorded
    assert type(y.grad_fn).__name__ == "AddBackward0"
    y *= 2                 # y = 6x; mul by a scalar saves no tensor
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    z = x * 1
    z.zero_()
    (z + x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [7.0, 7.0])


def test_shape_errors_are_runtime_errors_naming_both_shapes():
    with pytest.raises(RuntimeError, match=r"^The size of tensor a \(3\) must match the size of "
                                           r"tensor b \(2\) at non-singleton dimension 1$"):
        torch.ones(2, 3) + torch.ones(3, 2)
    with pytest.raises(RuntimeError, match=r"^mat1 and mat2 shapes cannot be multiplied "
                                           r"\(2x3 and 2x3\)$"):
        torch.ones(2, 3) @ torch.ones(2, 3)
    with pytest.raises(RuntimeError, match=r"inconsistent tensor size"):
        torch.ones(3) @ torch.ones(2)
    with pytest.raises(RuntimeError, match=r"size mismatch, got input \(2\), mat \(2x3\), vec \(2\)"):
        torch.ones(2, 3) @ torch.ones(2)
    with pytest.raises(IndexError, match=r"Dimension out of range \(expected to be in range of "
                                         r"\[-2, 1\], but got 2\)"):
        torch.ones(2, 3).sum(2)


def test_gradcheck_passes_and_reports_the_worst_element():
    x = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: (t * t.exp()).sum(), (x,))
    from jitgrad.ops import record, MUL_SCALAR

    def wrong(t):   # value 2t recorded with a rule that scales by 3
        return record(MUL_SCALAR, t.detach().numpy() * 2, t, consts=(3.0,))
    with pytest.raises(torch.autograd.GradcheckError, match="worst element"):
        torch.autograd.gradcheck(wrong, (x,))


def test_grad_fn_names_and_next_functions():
    x = torch.ones(2, 2, requires_grad=True)
    y = x + 2
    assert y.grad_fn is y.grad_fn
    assert y.grad_fn.name() == "AddBackward0"
    (acc, k), (none, _) = y.grad_fn.next_functions
    assert type(acc).__name__ == "AccumulateGrad" and acc.variable is x and k == 0 and none is None
    z = (y * x).sum()
    (mul, _), = z.grad_fn.next_functions
    assert [type(f).__name__ for f, _ in mul.next_functions] == ["AddBackward0", "AccumulateGrad"]
    b = x + torch.ones(2)      # broadcast: the hidden un-broadcast node does not show
    assert type(b.grad_fn.next_functions[0][0]).__name__ == "AccumulateGrad"
    names = {"sub": x - 2, "rsub": 2 - x, "div": x / 2, "neg": -x, "pow": x ** 2, "rpow": 2 ** x,
             "exp": x.exp(), "sum": x.sum(), "sumdim": x.sum(0), "mean": x.mean(), "mm": x @ x,
             "view": x.reshape(4), "t": x.t(), "T": x.T, "tr": x.transpose(0, 1),
             "rdiv": 2 / x, "relu": x.relu(), "norm": x.norm(), "cast": x.double()}
    expect = {"sub": "SubBackward0", "rsub": "RsubBackward1", "div": "DivBackward0",
              "neg": "NegBackward0", "pow": "PowBackward0", "rpow": "PowBackward2",
              "exp": "ExpBackward0", "sum": "SumBackward0", "sumdim": "SumBackward1",
              "mean": "MeanBackward0", "mm": "MmBackward0", "view": "ViewBackward0",
              "t": "TBackward0", "T": "PermuteBackward0", "tr": "TransposeBackward0",
              "rdiv": "MulBackward0", "relu": "ReluBackward0",
              "norm": "LinalgVectorNormBackward0", "cast": "ToCopyBackward0"}
    assert {k: type(v.grad_fn).__name__ for k, v in names.items()} == expect


def test_reprs():
    assert repr(torch.tensor(48.)) == "tensor(48.)"
    assert repr(torch.tensor(True)) == "tensor(True)"
    assert repr(torch.tensor([True, False])) == "tensor([ True, False])"
    assert repr(torch.ones(2, dtype=torch.float64)) == "tensor([1., 1.], dtype=jitgrad.float64)"
    assert repr(torch.ones(2, dtype=torch.float64, requires_grad=True)) == \
        "tensor([1., 1.], dtype=jitgrad.float64, requires_grad=True)"
    assert repr(torch.arange(3)) == "tensor([0, 1, 2])"
    assert repr(torch.tensor([1.5, 2])) == "tensor([1.5000, 2.0000])"
    assert repr(torch.tensor([1e-4, 1e3])) == "tensor([1.0000e-04, 1.0000e+03])"
    assert repr(torch.zeros(0)) == "tensor([])"
    assert repr(torch.tensor(3)) == "tensor(3)"
    x = torch.tensor([[1.123456, 2], [3, 4]], requires_grad=True)
    assert repr(x * 1) == "tensor([[1.1235, 2.0000],\n        [3.0000, 4.0000]], grad_fn=<MulBackward0>)"
    assert repr(torch.tensor(2.5, dtype=torch.float64) * torch.tensor(1.0)) == \
        "tensor(2.5000, dtype=jitgrad.float64)"
    assert str(torch.float64) == "jitgrad.float64" and torch.float is torch.float32
    assert repr(torch.ones(2, 3).shape) == "jitgrad.Size([2, 3])"
    big = repr(torch.arange(2000))
    assert big.startswith("tensor([   0,    1,    2,  ..., 1997, 1998, 1999])")


@pytest.mark.skipif(pytest.importorskip("torch", reason="PyTorch not installed") is None, reason="")
def test_reprs_match_pytorch_on_random_tensors():
    import torch as pt
    rng = np.random.default_rng(0)
    for shape in [(), (3,), (2, 3), (2, 3, 4), (20, 8), (1200,)]:
        for scale in (1.0, 1e-5, 1e5, 1e9):
            a = (rng.standard_normal(shape) * scale).astype(np.float32)
            assert repr(torch.tensor(a)) == repr(pt.tensor(a))
            r = repr(torch.tensor(a.astype(np.float64)))
            assert r == repr(pt.tensor(a.astype(np.float64))).replace("torch.", "jitgrad.")
    for a in (np.arange(12).reshape(3, 4), np.array([0.0, 1.0, -3.0])):
        assert repr(torch.tensor(a)).replace("jitgrad.", "") == repr(pt.tensor(a)).replace("torch.", "")


def test_dtype_inference_and_promotion():
    assert torch.tensor(1.5).dtype is torch.float32
    assert torch.tensor(3).dtype is torch.int64
    assert torch.tensor(np.ones(2)).dtype is torch.float64
    assert torch.tensor([True]).dtype is torch.bool
    assert torch.ones(2).dtype is torch.float32 and torch.get_default_dtype() is torch.float32
    f32, f64 = torch.ones(2), torch.ones(2, dtype=torch.float64)
    assert (f32 * 2.5).dtype is torch.float32
    assert (f32 + f64).dtype is torch.float64
    assert (torch.arange(3) * 1.5).dtype is torch.float32
    assert (torch.arange(3) / 2).dtype is torch.float32
    assert (f32 * torch.tensor(2.0, dtype=torch.float64)).dtype is torch.float32   # 0-dim
    x = torch.ones(2, requires_grad=True)
    y = x * f64                     # a mixed graph runs on a float64 tape
    y.sum().backward()
    assert x.grad.dtype is torch.float32


def test_constructors():
    assert torch.Tensor(3, 4).shape == (3, 4)
    assert torch.Tensor([1, 2]).dtype is torch.float32
    assert torch.FloatTensor(2).dtype is torch.float32
    assert torch.DoubleTensor([1.0]).dtype is torch.float64
    assert torch.full((2,), 7).dtype is torch.int64
    assert torch.eye(3).numpy().trace() == 3
    assert torch.linspace(0, 1, 5).numpy()[-1] == 1
    assert torch.arange(0, 1, 0.25).shape == (4,)
    assert torch.zeros_like(torch.ones(2, 3)).shape == (2, 3)
    torch.manual_seed(0)
    a = torch.randn(3)
    torch.manual_seed(0)
    assert torch.equal(a, torch.randn(3))
    x = torch.tensor([1.0, 2.0])
    assert x.size() == (2,) and x.size(0) == 2 and x.dim() == 1 and x.ndim == 1 and x.numel() == 2
    assert x.sum().item() == 3.0 and x.tolist() == [1.0, 2.0]
    c = x.clone()
    c.numpy()[0] = 9
    assert x[0].item() == 1.0


def test_deep_chain_has_no_recursion_limit():
    x = torch.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.item() == 1.0


def test_float32_leaf_of_a_float64_graph_gets_a_float32_grad():
    # (a float64 graph without saved arrays: tests/test_tape_regressions.py)
    z = torch.ones(3, requires_grad=True)
    w = z.double() * 1.0000001           # float32 leaf, float64 graph downstream
    w.sum().backward()
    assert z.grad.dtype is torch.float32


def test_copy_fill_and_detached_alias_share_versions():
    x = torch.ones(3, requires_grad=True)
    h = x * 2
    k = h * h                            # saves h
    hd = h.detach()
    hd.add_(1)                           # the alias shares h's version counter
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        k.sum().backward()
    y = x * 1
    y.copy_(torch.tensor([1.0, 2.0, 3.0]))
    assert type(y.grad_fn).__name__ == "CopyBackwards"
    y.fill_(2.0)
    np.testing.assert_allclose(y.detach().numpy(), [2.0, 2.0, 2.0])
    (y * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 2.0])
    src = torch.ones(3, requires_grad=True)
    dst = torch.zeros(3)
    dst.copy_(src * 3)
    dst.sum().backward()
    np.testing.assert_allclose(src.grad.numpy(), [3.0, 3.0, 3.0])


def test_create_graph_through_an_op_without_gradient_gives_zeros():
    # PyTorch's floor/sign/round have a zero gradient: reached inputs get zeros, with
    # create_graph=True as without it
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    for f in (torch.floor, torch.sign, torch.round):
        g, = torch.autograd.grad(f(x).sum(), x, create_graph=True)
        assert not g.requires_grad
        np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])
    x.grad = None
    with pytest.warns(UserWarning, match="reference cycle"):
        torch.floor(x).sum().backward(create_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    g, = torch.autograd.grad((torch.floor(x) * x).sum(), x, create_graph=True)   # a sum with zeros
    np.testing.assert_array_equal(g.detach().numpy(), [1.0, -2.0])


def test_gradcheck_of_an_output_needing_no_gradient():
    # its Jacobian is zero, as PyTorch's gradcheck takes it; gradgradcheck of floor relies on it
    x = torch.tensor([0.3, 0.7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: (t.sin(), torch.ones(3, dtype=torch.float64)), x)
    assert torch.autograd.gradgradcheck(torch.floor, x)


def test_create_graph_gradient_of_an_output_that_is_the_input():
    x = torch.ones(3, requires_grad=True)            # a leaf no op has used yet
    v = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    g, = torch.autograd.grad(x, x, v, create_graph=True)
    assert g is v                                      # as PyTorch: the seed itself


def test_create_graph_reads_values_from_before_an_in_place_op():
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 1
    y.mul_(x)                 # MulBackward0 reads y's old value, now overwritten by x * x
    g, = torch.autograd.grad(y.sum(), x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [2.0, 4.0, 6.0])
    h, = torch.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), [2.0, 2.0, 2.0])


def test_inplace_write_into_a_tensor_needing_no_grad_keeps_its_old_value_for_create_graph():
    """x needs no gradient, so the row of x.op_(s) keeps x as a constant for s's formula: the
    write into x must not change it (PyTorch saves original self)."""
    s = torch.tensor([4.0, 0.5], requires_grad=True)
    x = torch.tensor([1.0, 2.0, 3.0])
    x.mul_(s.sum())
    (g,) = torch.autograd.grad(x.sum(), (s,), create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), [6.0, 6.0])          # not 27 = sum of the new x
    x = torch.tensor([5.0, 2.0, 3.0])
    x.scatter_reduce_(0, torch.tensor([0, 2]), s, "amax", include_self=False)
    (g,) = torch.autograd.grad(x.sum(), (s,), create_graph=True)
    np.testing.assert_array_equal(g.detach().numpy(), [1.0, 1.0])          # no tie with the new x[0]
