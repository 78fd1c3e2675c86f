"""Adversarial sequences for a compiled module differentiated outside (``cm = compile(model)``,
then ``loss.backward()``): the CompiledFunctionBackward node's backward (its one-call path adding
into the caller's buffer by address, and the general one) under unusual buffers, reentrant and
threaded backwards, hooks that raise, compaction, deleted modules, forwards that fail (a
replay stopped by a forward kernel: generators put back) and in-place writes between a forward
and its backward. Each one against an eager twin (bit for bit where nothing sums two calls'
terms), or eager's exception, and the engine usable afterwards."""
import gc
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest

import jitgrad
import jitgrad.nn.functional as F
from jitgrad import nn
from jitgrad.compiler import program as _program
from jitgrad.engine.tape import TAPE


def mlp(seed=0, dtype=jitgrad.float64, act=nn.ReLU, out=1):
    jitgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), act(), nn.Linear(8, out)).to(dtype)


def twins(seed=0, dtype=jitgrad.float64, act=nn.ReLU, out=1):
    eager, twin = mlp(seed, dtype, act, out), mlp(seed, dtype, act, out)
    return eager, twin, jitgrad.compile(twin)


def pair(make):
    jitgrad.manual_seed(0)
    eager = make()
    jitgrad.manual_seed(0)
    twin = make()
    return eager, twin, jitgrad.compile(twin)


def X(n=6, seed=0, dtype=np.float64, rg=False):
    a = np.random.default_rng(seed).standard_normal((n, 3)).astype(dtype)
    return jitgrad.tensor(a, requires_grad=rg)


def loss_of(m, x):
    return (m(x) ** 2).sum()


def grads(m):
    return [None if p.grad is None else p.grad.numpy().copy() for p in m.parameters()]


def same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is None and v is None
        else:
            np.testing.assert_array_equal(u, v)


def close(a, b):
    """Two calls' terms of one parameter summed by the node, then added (README): last bits."""
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-13, atol=1e-15)


def warm(cm, x):
    """The traced call and one replay, gradients cleared."""
    cm(x)
    cm(x)
    for p in cm.parameters():
        p.grad = None


def replays(cm):
    entries = list(cm._compiled.traces.values())
    return bool(entries) and all(not isinstance(e, str) for e in entries)


def engine_ok():
    a = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    (a * a).sum().backward()
    assert a.grad.tolist() == [2.0, 4.0]
    assert not TAPE.pinned


def attempt(fn):
    try:
        fn()
    except Exception as e:          # noqa: BLE001 (the exception is what is compared)
        return type(e), str(e)
    return None


@pytest.fixture(autouse=True)
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a replay, never an eager fallback, unless expected
        yield
    engine_ok()


# ---- the node's buffers --------------------------------------------------------------------
def test_float32_module_float64_seed_and_anomaly_toggled_between_forward_and_backward():
    e, c, cm = twins(dtype=jitgrad.float32)
    x = X(dtype=np.float32)
    warm(cm, x)
    for m in (e, cm):
        out = m(x)
        with pytest.warns(UserWarning, match="Anomaly Detection"), \
                jitgrad.autograd.detect_anomaly():
            (out ** 2).sum().backward()
    same(grads(e), grads(c))
    for m in (e, cm):       # a float64 loss: the general path (eager's rows in float64, the
        (m(x).double() * 3).sum().backward()    # node's in float32: README)
    for u, v in zip(grads(e), grads(c)):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-7)
    for p in list(e.parameters()) + list(c.parameters()):
        p.grad = None
    # nan from the caller's graph: anomaly's error, as eager's
    res = []
    for m in (e, cm):
        out = m(x)
        with pytest.warns(UserWarning), jitgrad.autograd.detect_anomaly():
            res.append(attempt(lambda: (out * float("nan")).sum().backward()))
    assert res[0] == res[1] and res[0][0] is RuntimeError
    for m in (e, cm):
        loss_of(m, x).backward()
    same(grads(e), grads(c))
    assert replays(cm)


def test_zero_size_batch_and_zero_dim_output():
    e, c, cm = twins()
    x = X(n=0)
    for _ in range(3):
        loss_of(e, x).backward()
        loss_of(cm, x).backward()
    same(grads(e), grads(c))

    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1).double()

        def forward(self, x):
            return self.lin(x).sum()
    e, c, cm = pair(Scalar)
    x = X()
    for _ in range(3):
        for m in (e, cm):
            out = m(x)
            assert out.shape == ()
            out.backward(jitgrad.tensor(2.0, dtype=jitgrad.float64))
    same(grads(e), grads(c))
    assert out.grad_fn.name() == "CompiledFunctionBackward"


def test_non_contiguous_arguments():
    e, c, cm = twins()
    big = np.random.default_rng(0).standard_normal((3, 12))
    wide = np.random.default_rng(1).standard_normal((6, 7))
    for _ in range(3):
        for x in (jitgrad.tensor(big).t()[::2], jitgrad.tensor(wide)[:, ::2][:, :3],
                  jitgrad.tensor(big[:, :6]).t()):
            assert not x.is_contiguous()
            loss_of(e, x).backward()
            loss_of(cm, x).backward()
            same(grads(e), grads(c))
    assert replays(cm)
    # one that requires grad runs eagerly (warned), with eager's gradients
    base = [jitgrad.tensor(big, requires_grad=True) for _ in range(2)]
    with pytest.warns(UserWarning, match="non-contiguous"):
        for _ in range(3):
            loss_of(e, base[0].t()[::2]).backward()
            loss_of(cm, base[1].t()[::2]).backward()
    same(grads(e), grads(c))
    np.testing.assert_array_equal(base[0].grad.numpy(), base[1].grad.numpy())


def test_a_parameter_or_its_detached_storage_as_the_input():
    class Square(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3).double()

        def forward(self, x):
            return self.lin(x).tanh()
    e, c, cm = pair(Square)
    for _ in range(4):
        loss_of(e, e.lin.weight).backward()
        loss_of(cm, c.lin.weight).backward()
        same(grads(e), grads(c))
    assert replays(cm)
    e, c, cm = pair(Square)
    warm(cm, X(n=3))
    opts = [jitgrad.optim.SGD(m.parameters(), lr=0.1) for m in (e, c)]
    for _ in range(4):
        for m, mm, opt in ((e, e, opts[0]), (cm, c, opts[1])):
            opt.zero_grad()
            loss_of(m, mm.lin.weight.detach()).backward()
            opt.step()
        same(grads(e), grads(c))
        same([p.detach().numpy() for p in e.parameters()],
             [p.detach().numpy() for p in c.parameters()])


def test_returning_a_parameter_or_a_view_of_one():
    class Returns(nn.Module):
        def __init__(self, view):
            super().__init__()
            self.lin = nn.Linear(3, 3).double()
            self.view = view

        def forward(self, x):
            return self.lin(x), self.lin.weight[0] if self.view else self.lin.weight
    for view in (False, True):
        e, c, cm = pair(lambda: Returns(view))
        x = X()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # (a view of a parameter: eagerly)
            for _ in range(4):
                for m in (e, cm):
                    a, b = m(x)
                    ((a ** 2).sum() + (b * 3).sum()).backward()
                same(grads(e), grads(c))
        assert replays(cm) != view


# ---- reentrant, threaded and hooked backwards ----------------------------------------------
def test_reentrant_backward_from_a_functions_backward_and_a_tensor_hook():
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    model = {}

    class Reenter(jitgrad.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1

        @staticmethod
        def backward(ctx, g):
            with jitgrad.enable_grad():
                loss_of(model["m"], x).backward()
            return g
    for m in (e, cm):
        model["m"] = m
        Reenter.apply(loss_of(m, x)).backward()
        later = loss_of(m, x)
        out = m(x)
        out.register_hook(lambda g, later=later: (later.backward(), g)[1])
        (out * 3).sum().backward()
    same(grads(e), grads(c))


def test_backward_from_another_thread():
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    for m in (e, cm):
        loss = loss_of(m, x)
        t = threading.Thread(target=loss.backward)
        t.start()
        t.join(60)
        assert not t.is_alive()
    same(grads(e), grads(c))


def test_hooks_and_retain_grad_on_the_output():
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    seen = []
    for m in (e, cm):
        out = m(x)
        out.retain_grad()
        out.register_hook(lambda g: g * 2)
        (out ** 2).sum().backward()
        seen.append(out.grad.numpy().copy())
    np.testing.assert_array_equal(*seen)
    same(grads(e), grads(c))
    res = []
    for m in (e, cm):                       # a hook changing the gradient's size: torch's error
        out = m(x)
        out.register_hook(lambda g: g.sum())
        res.append(attempt(lambda: (out ** 2).sum().backward()))
    assert res[0] == res[1] == (RuntimeError, "hook '<lambda>' has changed the size of value")


class Boom(KeyboardInterrupt):
    pass


def _boom(g):
    raise Boom()


@pytest.mark.parametrize("where", ["output", "parameter"])
def test_a_hook_raising_mid_backward(where):
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    for m, mm in ((e, e), (cm, c)):
        out = m(x)
        h = (out if where == "output" else mm[0].weight).register_hook(_boom)
        loss = (out ** 2).sum()
        with pytest.raises(Boom):
            loss.backward(retain_graph=True)
        h.remove()
        loss.backward()                     # (the retained graph, again)
    same(grads(e), grads(c))
    for _ in range(2):
        for m in (e, cm):
            loss_of(m, x).backward()
        same(grads(e), grads(c))


def test_a_hook_raising_once_then_the_freed_graph():
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    res = []
    for m, mm in ((e, e), (cm, c)):
        calls = []

        def once(g, calls=calls):
            calls.append(1)
            if len(calls) == 1:
                raise ValueError("once")
            return g
        h = mm[0].bias.register_hook(once)
        loss = loss_of(m, x)
        res.append(attempt(loss.backward))
        res.append(attempt(loss.backward))
        h.remove()
    assert res[:2] == res[2:] and res[0] == (ValueError, "once")
    same(grads(e), grads(c))


def test_threads_sharing_a_compiled_module_with_autograd_grad():
    e, c, cm = twins()
    xs = [X(seed=i) for i in range(6)]
    ref = [[g.numpy().copy() for g in jitgrad.autograd.grad(loss_of(e, x), list(e.parameters()))]
           for x in xs]
    warm(cm, xs[0])
    errors = []

    def work(k):
        try:
            for it in range(25):
                i = (k + it) % 6
                found = jitgrad.autograd.grad(loss_of(cm, xs[i]), list(c.parameters()))
                same([g.numpy() for g in found], ref[i])
        except BaseException as err:        # noqa: BLE001
            errors.append(repr(err))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:2]


def test_one_thread_forwards_another_backwards_earlier_outputs():
    e, c, cm = twins(act=nn.Tanh)
    xs = [X(seed=i) for i in range(6)]
    ref = [[g.numpy().copy() for g in jitgrad.autograd.grad(loss_of(e, x), list(e.parameters()))]
           for x in xs]
    warm(cm, xs[0])
    q = queue.Queue(maxsize=3)
    errors = []

    def produce():
        try:
            for it in range(60):
                q.put((it % 6, cm(xs[it % 6])))
        except BaseException as err:        # noqa: BLE001
            errors.append(repr(err))
        q.put(None)

    def consume():
        try:
            while (item := q.get()) is not None:
                i, out = item
                found = jitgrad.autograd.grad((out ** 2).sum(), list(c.parameters()))
                same([g.numpy() for g in found], ref[i])
        except BaseException as err:        # noqa: BLE001
            errors.append(repr(err))
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:2]


def test_heavy_reentrant_work_in_a_hook_and_gc_mid_backward():
    e, c, cm = twins(act=nn.Tanh)
    x = X()
    warm(cm, x)
    results = {}
    for m, mm in ((e, e), (cm, c)):
        inner, keep = [], [m(X(seed=i)) for i in range(10)]
        out = m(x)

        def hook(g, m=m, mm=mm, inner=inner, keep=keep):
            keep.clear()
            gc.collect()
            with jitgrad.enable_grad():
                for i in range(8):
                    found = jitgrad.autograd.grad(loss_of(m, X(seed=i)), list(mm.parameters()))
                    inner.append([t.numpy().copy() for t in found])
                    big = jitgrad.zeros(500, dtype=jitgrad.float64, requires_grad=True)
                    for _ in range(20):
                        big = big * 1.5
            return g * 2
        out.register_hook(hook)
        (out ** 2).sum().backward()
        results[m is e] = (grads(mm), inner)
    same(results[True][0], results[False][0])
    for a, b in zip(results[True][1], results[False][1]):
        same(a, b)


# ---- what the node outlives ------------------------------------------------------------------
def test_backward_after_the_module_and_its_traces_are_gone():
    e, c, cm = twins()
    x, x2 = X(), X(seed=1)
    warm(cm, x)
    params = list(c.parameters())
    losses = [loss_of(cm, x), loss_of(cm, x2)]
    cm._compiled.traces.clear()
    del cm, c
    gc.collect()
    for loss in losses:
        loss.backward()
    for xx in (x, x2):
        loss_of(e, xx).backward()
    close(grads(e), [p.grad.numpy() for p in params])
    # the module dropped from inside a hook of a later call's output, mid-backward
    e, c, cm = twins()
    warm(cm, x)
    params = list(c.parameters())
    holder = {"cm": cm}
    del cm, c
    o1, o2 = holder["cm"](x), holder["cm"](x2)
    o2.register_hook(lambda g: (holder.clear(), gc.collect(), g)[2])
    (o2.sum() + o1.sum()).backward()
    (e(x2).sum() + e(x).sum()).backward()
    close(grads(e), [p.grad.numpy() for p in params])


def test_backward_after_a_guard_miss_retraced_and_after_compaction():
    e, c, cm = twins()
    x, x2 = X(), X(n=4, seed=1)
    warm(cm, x)
    first = loss_of(cm, x)
    loss_of(cm, x2)                         # traced again, then replayed
    third = loss_of(cm, x2)
    TAPE.compact()
    first.backward()
    TAPE.compact()
    third.backward()
    loss_of(e, x).backward()
    loss_of(e, x2).backward()
    same(grads(e), grads(c))
    assert len(cm._compiled.traces) == 2 and replays(cm)


def test_accumulation_over_many_calls_and_many_forwards_without_backward():
    e, c, cm = twins()
    warm(cm, X())
    for i in range(40):
        loss_of(e, X(seed=i)).backward()
        loss_of(cm, X(seed=i)).backward()
    same(grads(e), grads(c))
    outs = [loss_of(cm, X(seed=i % 7)) for i in range(600)]
    for i in (0, 599, 300):
        for p in c.parameters():
            p.grad = None
        outs[i].backward()
        for p in e.parameters():
            p.grad = None
        loss_of(e, X(seed=i % 7)).backward()
        same(grads(e), grads(c))
    del outs
    gc.collect()


def test_freezing_a_parameter_between_forward_and_backward():
    e, c, cm = twins()
    x = X()
    warm(cm, x)
    for m, mm in ((e, e), (cm, c)):
        out = m(x)
        mm[0].weight.requires_grad_(False)
        (out ** 2).sum().backward()
        mm[0].weight.requires_grad_(True)
    same(grads(e), grads(c))
    for m in (e, cm):
        loss_of(m, x).backward()
    same(grads(e), grads(c))


def test_gradients_of_the_input_alone():
    e, c, cm = twins()
    xe, xc = X(rg=True), X(rg=True)
    for k in range(4):
        ge, = jitgrad.autograd.grad(loss_of(e, xe), [xe])
        gc_, = jitgrad.autograd.grad(loss_of(cm, xc), [xc])
        np.testing.assert_array_equal(ge.numpy(), gc_.numpy())
        loss_of(e, xe).backward(inputs=[xe])
        loss_of(cm, xc).backward(inputs=[xc])
        np.testing.assert_array_equal(xe.grad.numpy(), xc.grad.numpy())
        if k == 0:
            assert all(g is None for g in grads(c))
        loss_of(e, xe).backward(inputs=[e[0].weight])
        loss_of(cm, xc).backward(inputs=[c[0].weight])
        same(grads(e), grads(c))


# ---- in-place writes between a forward and its backward ------------------------------------
class Scaled(nn.Module):
    def __init__(self, last=None):
        super().__init__()
        self.lin = nn.Linear(3, 2).double()
        self.register_buffer("s", jitgrad.tensor([[1.5, -0.5]], dtype=jitgrad.float64))
        self.last = last

    def forward(self, x):
        h = self.lin(x) * self.s
        return h if self.last is None else getattr(h, self.last)()


def _errors_of(e, cm, write, n=3):
    res = []
    for m in (e, cm) * n:
        x = X()
        out = m(x)
        write(m, x, out)
        res.append(attempt(lambda: (out ** 2).sum().backward()))
    return res


def test_in_place_writes_into_what_the_rows_saved_raise_eagers_error():
    e, c, cm = pair(Scaled)
    res = _errors_of(e, cm, lambda m, x, out: x.add_(1))
    assert len(set(res)) == 1 and res[0][0] is RuntimeError and "inplace" in res[0][1]
    e, c, cm = pair(Scaled)

    def buffer(m, x, out):
        with jitgrad.no_grad():
            (e if m is e else c).s.mul_(1)
    res = _errors_of(e, cm, buffer)     # (the buffer's version moves at each write)
    res = {(t, re.sub(r"version \d+", "version N", m)) for t, m in res}
    assert len(res) == 1 and "DoubleTensor [1, 2]], which is output 0 of" not in str(res)
    e, c, cm = pair(Scaled)                 # an output its own rows do not save: no error
    assert set(_errors_of(e, cm, lambda m, x, out: out.mul_(2))) == {None}
    same(grads(e), grads(c))


@pytest.mark.parametrize("last", ["tanh", "exp"])
def test_an_output_its_rows_saved_written_in_place_raises(last):
    """Eager's error; a replay's, as torch.compile's, names no node for the output."""
    e, c, cm = pair(lambda: Scaled(last))
    res = _errors_of(e, cm, lambda m, x, out: out.detach().zero_() if last == "exp"
                     else out.add_(1))
    assert res[0] is not None and res[0][0] is RuntimeError
    replays = res[3::2]                 # (the compiled copy's calls after its trace)
    assert all(", which is output 0 of" not in m for _, m in replays)
    assert len({(t, re.sub(r", which is output 0 of \w+,", "", m)) for t, m in res}) == 1, res


def test_non_leaf_argument_written_in_place_after_the_forward():
    e, c, cm = pair(Scaled)
    res = []
    for m in (e, cm, cm, cm):
        x = X(rg=True) * 2
        out = m(x)
        x.add_(1)
        res.append(attempt(lambda: (out ** 2).sum().backward()))
    assert len(set(res)) == 1 and res[0][0] is RuntimeError


def test_writes_through_data_between_forward_and_backward():
    e, c, cm = pair(Scaled)
    x = X()
    warm(cm, x)
    for m, mm in ((e, e), (cm, c)):
        out = m(x)
        mm.s.data.mul_(2)
        mm.lin.weight.data.mul_(3)
        (out ** 2).sum().backward()
    same(grads(e), grads(c))


# ---- several outputs -------------------------------------------------------------------------
class Three(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4).double()

    def forward(self, x):
        h = self.lin(x)
        return h.tanh(), (h * 3).sum(0), h


def test_several_outputs_one_used_freed_and_wrong_seeds():
    e, c, cm = pair(Three)
    x = X()
    for k in range(6):
        for m in (e, cm):
            a, b, h = m(x)
            [(a ** 2).sum(), b.sum(), (h * h).sum()][k % 3].backward()
        same(grads(e), grads(c))
    res = []
    for m in (e, cm):
        a, b, h = m(x)
        loss = a.sum()
        loss.backward()
        res += [attempt(loss.backward), attempt(h.sum().backward),
                attempt(lambda: b.backward(jitgrad.ones(3)))]
    assert res[:3] == res[3:] and all(r[0] is RuntimeError for r in res)
    for m in (e, cm):
        a, b, _ = m(x)
        jitgrad.autograd.backward([a, b], [jitgrad.ones(4, 6, dtype=jitgrad.float64).t(),
                                           jitgrad.tensor([1.0, 2, 3, 4])])
    same(grads(e), grads(c))


def test_one_tensor_returned_twice_and_an_empty_output():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 4).double()

        def forward(self, x):
            h = self.lin(x).relu()
            return h, h, {"h": h}, h[:0] * 2
    e, c, cm = pair(Twice)
    x = X()
    for _ in range(4):
        for m in (e, cm):
            a, b, d, empty = m(x)
            assert a is b is d["h"] and empty.shape == (0, 4)
            (a.sum() + (b ** 2).sum() + empty.sum()).backward()
        same(grads(e), grads(c))
    assert replays(cm)


def test_chained_and_recurrent_compiled_modules():
    e1, c1, cm1 = pair(lambda: nn.Sequential(nn.Linear(3, 4).double(), nn.Tanh()))
    e2, c2, cm2 = pair(lambda: nn.Sequential(nn.Linear(4, 2).double(), nn.ReLU()))
    x = X()
    for _ in range(4):
        (e2(e1(x)) ** 2).sum().backward()
        (cm2(cm1(x)) ** 2).sum().backward()
        same(grads(e1), grads(c1))
        same(grads(e2), grads(c2))
    e, c, cm = pair(lambda: nn.Sequential(nn.Linear(3, 3).double(), nn.Tanh()))
    for _ in range(3):
        he, hc = X(), X()
        for _ in range(5):
            he, hc = e(he), cm(hc)
        (he ** 2).sum().backward()
        (hc ** 2).sum().backward()
        close(grads(e), grads(c))
    assert replays(cm1) and replays(cm2) and replays(cm)


# ---- forwards that fail ----------------------------------------------------------------------
def test_a_bad_shape_then_more_calls_and_live_nodes_across_it():
    e, c, cm = twins()
    x, x2 = X(), X(seed=3)
    warm(cm, x)
    bad = jitgrad.ones(4, 5, dtype=jitgrad.float64)
    res = [attempt(lambda m=m: m(bad)) for m in (e, cm, cm)]
    assert res[0] == res[1] == res[2] == \
        (RuntimeError, "mat1 and mat2 shapes cannot be multiplied (4x5 and 3x8)")
    for m in (e, cm):
        o1, o2 = m(x), m(x2)
        with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
            m(bad)
        o3 = m(x)
        (o1.sum() + 2 * o2.sum() + 3 * o3.sum()).backward()
    close(grads(e), grads(c))
    for m in (e, cm):
        loss_of(m, x).backward()
    close(grads(e), grads(c))
    assert replays(cm)


def test_a_class_target_out_of_range_between_two_nodes():
    class CE(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 5).double()

        def forward(self, x, t):
            return F.cross_entropy(self.lin(x), t, reduction="none")
    e, c, cm = pair(CE)
    x = X()
    rng = np.random.default_rng(0)
    ts = [jitgrad.tensor(rng.integers(0, 5, 6)) for _ in range(3)]
    cm(x, ts[0])
    cm(x, ts[0])
    res = {}
    for m in (e, cm):
        o1 = m(x, ts[1])
        errs = [attempt(lambda t=t: m(x, jitgrad.tensor(t)))
                for t in ([0, 1, 2, 3, 4, 9], [0, 1, 2, 3, 4, -100])]
        o2 = m(x, ts[2])
        (o1.sum() + 2 * o2.sum()).backward()
        res[m is e] = (errs, o1.detach().numpy(), o2.detach().numpy())
    assert res[True][0] == res[False][0] == [(IndexError, "Target 9 is out of bounds."), None]
    same(res[True][1:], res[False][1:])
    close(grads(e), grads(c))
    assert replays(cm)


class Noisy(nn.Module):
    """Draws (randn on a generator, dropout on the default one), then an inverse of the
    argument: a singular one stops the replay's forward kernel (ReplayStopped)."""

    def __init__(self, gen=None):
        super().__init__()
        self.lin = nn.Linear(3, 3).double()
        self.gen = gen

    def forward(self, a, x):
        noise = jitgrad.randn(3, 3, dtype=jitgrad.float64, generator=self.gen)
        h = F.dropout(self.lin(x), 0.3, training=self.training)
        return jitgrad.linalg.inv(a + 0 * noise) @ h + noise


@pytest.mark.parametrize("user_generator", [False, True], ids=["default", "generator"])
def test_a_replay_stopped_puts_the_generators_back(user_generator, monkeypatch):
    stopped = []
    failed = _program.Program._failed

    def spy(self, tensors):
        try:
            failed(self, tensors)
        except _program.ReplayStopped:
            stopped.append(1)
            raise
    monkeypatch.setattr(_program.Program, "_failed", spy)
    gens = [jitgrad.Generator().manual_seed(5) if user_generator else None for _ in range(2)]
    e, c, cm = pair(lambda: Noisy(gens.pop()))
    good = jitgrad.tensor(np.eye(3) * 2 + 0.1, requires_grad=True)
    bad = jitgrad.tensor(np.ones((3, 3)), requires_grad=True)
    x = X(n=3)
    singular = "linalg.inv: The diagonal element 2 is zero, the inversion could not be " \
        "completed because the input matrix is singular."
    live = {}
    for k, a in enumerate([good, good, bad, good, bad, bad, good, good]):
        if k % 3 == 0:
            jitgrad.manual_seed(100 + k)
        state = jitgrad.get_rng_state()
        seen = []
        for m in (e, cm):
            jitgrad.set_rng_state(state)
            try:
                out = m(a, x)
                live.setdefault(m is e, []).append(out)
                (out ** 2).sum().backward(retain_graph=True)
                seen.append(out.detach().numpy().copy())
            except Exception as err:       # noqa: BLE001
                seen.append((type(err).__name__, str(err)))
            seen.append(jitgrad.get_rng_state().numpy().copy())
            if user_generator:
                seen.append(m.gen.get_state().numpy().copy())
        n = len(seen) // 2
        if isinstance(seen[0], tuple):
            assert seen[0] == seen[n] == ("LinAlgError", singular)
        same(seen[:n] if not isinstance(seen[0], tuple) else seen[1:n],
             seen[n:] if not isinstance(seen[0], tuple) else seen[n + 1:])
        same(grads(e), grads(c))
    assert stopped and replays(cm)
    for outs in (live[True], live[False]):     # every node's backward again, after the others
        sum((o * o).sum() for o in outs).backward()
    close(grads(e), grads(c))


# ---- in a fresh process (a crash is a failed test) -------------------------------------------
def test_a_risky_sequence_in_a_subprocess():
    script = textwrap.dedent("""
        import gc, threading
        import numpy as np
        import jitgrad
        from jitgrad import nn
        from jitgrad.engine.tape import TAPE
        jitgrad.manual_seed(0)
        m = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1)).float()
        cm = jitgrad.compile(m)
        xs = [jitgrad.randn(5, 3) for _ in range(4)]
        outs = [cm(x) for x in xs * 50]
        def hook(g):
            with jitgrad.enable_grad():     # (many rows recorded mid-backward: the tape grows)
                for _ in range(3000):
                    jitgrad.ones(3, requires_grad=True) * 2
            return g
        outs[3].register_hook(hook)
        for o in outs[::17]:
            (o.double() ** 2).sum().backward(retain_graph=True)
            TAPE.compact()
        def work():
            for x in xs * 10:
                (cm(x) ** 2).sum().backward()
        ts = [threading.Thread(target=work) for _ in range(3)]
        [t.start() for t in ts]
        [t.join(60) for t in ts]
        del outs, cm
        gc.collect()
        a = jitgrad.tensor([1.0, 2.0], requires_grad=True)
        (a * a).sum().backward()
        assert a.grad.tolist() == [2.0, 4.0]
        print("done")
        """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("done")


def test_a_stopped_replay_keeps_another_threads_draws():
    class Drop(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3).double()

        def forward(self, a, x):
            return jitgrad.linalg.inv(a) @ F.dropout(self.lin(x), 0.5)
    jitgrad.manual_seed(0)
    cm = jitgrad.compile(Drop())
    good = jitgrad.tensor(np.eye(3) * 2, requires_grad=True)
    bad = jitgrad.tensor(np.ones((3, 3)), requires_grad=True)
    x = X(n=3)
    cm(good, x)
    cm(good, x)

    def run(threaded):
        jitgrad.manual_seed(1)
        started = threading.Event()
        w = jitgrad.ones(2, requires_grad=True)

        def hook(g):            # (runs holding the tape's lock, as the backward does)
            started.set()
            time.sleep(0.3)
            jitgrad.rand(4)
            return g
        w.register_hook(hook)
        t = threading.Thread(target=(w * 2).sum().backward)
        t.start()
        if threaded:
            started.wait()
        else:
            t.join()
        with pytest.raises(RuntimeError, match="singular"):
            cm(bad, x)
        t.join()
        return jitgrad.rand(4).tolist()
    assert run(True) == run(False)


def test_func_grad_through_a_compiled_module():
    e, c, cm = twins(act=nn.Tanh)
    x = X(n=2)
    for _ in range(3):
        found = [jitgrad.func.grad(lambda x, m=m: m(x).sum())(x).detach().numpy() for m in (e, cm)]
        np.testing.assert_array_equal(*found)
