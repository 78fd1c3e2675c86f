"""jitgrad.compile: a replayed step gives eager's results exactly; guards re-trace; what cannot be
replayed runs eagerly with a warning (an error under fullgraph=True), never a wrong replay."""
import collections
import gc
import re
import warnings
import weakref

import numpy as np
import pytest

import jitgrad
from jitgrad import nn


def mlp(seed, dtype=jitgrad.float64, act=nn.Tanh):
    jitgrad.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), act(),
                         nn.Linear(8, 1)).to(dtype)


def data(dtype=np.float64, n=32, seed=0):
    rng = np.random.default_rng(seed)
    X = jitgrad.tensor(rng.standard_normal((n, 3)).astype(dtype))
    y = jitgrad.tensor(np.sign(rng.standard_normal((n, 1))).astype(dtype))
    return X, y


def make_step(model, opt, sched=None):
    def step(X, y):
        opt.zero_grad()
        score = model(X)
        loss = jitgrad.relu(1 - y * score).mean() + 1e-3 * sum((p * p).sum() for p in model.parameters())
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        return loss, score
    return step


def twins(opt_name, dtype=jitgrad.float64, sched=False, act=nn.Tanh, **hp):
    out = []
    for _ in range(2):
        m = mlp(1, dtype, act)
        o = getattr(jitgrad.optim, opt_name)(m.parameters(), **hp)
        s = jitgrad.optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) if sched else None
        out.append((m, o, make_step(m, o, s)))
    return out


OPTIMIZERS = [("SGD", dict(lr=0.05)), ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
              ("Adam", dict(lr=0.01)), ("AdamW", dict(lr=0.01))]


@pytest.mark.parametrize("opt_name,hp", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [jitgrad.float64, jitgrad.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("act", [nn.ReLU, nn.Tanh])
def test_replay_equals_eager(opt_name, hp, dtype, act):
    """Bit for bit, except that tanh, exp, log (numpy's vectorised math library in eager, the C
    library's in compiled code) may differ in the last bit."""
    (m1, o1, eager), (m2, o2, step) = twins(opt_name, dtype, act=act, **hp)
    compiled = jitgrad.compile(step)
    if act is nn.ReLU:
        check = np.testing.assert_array_equal
    else:
        def check(a, b):
            np.testing.assert_allclose(a, b, rtol=1e-12 if dtype == jitgrad.float64 else 1e-5,
                                       atol=1e-14 if dtype == jitgrad.float64 else 1e-6)
    for k in range(6):
        X, y = data(np.float64 if dtype == jitgrad.float64 else np.float32, seed=k)
        l1, s1 = eager(X, y)
        l2, s2 = compiled(X, y)
        check(l1.item(), l2.item())
        check(s1.detach().numpy(), s2.detach().numpy())
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1
    for p, q in zip(m1.parameters(), m2.parameters()):
        check(p.detach().numpy(), q.detach().numpy())
        check(p.grad.numpy(), q.grad.numpy())
    assert [sorted(s) for s in o1.state.values()] == [sorted(s) for s in o2.state.values()]


def test_scheduler_and_grad_none_are_replayed():
    (m1, o1, eager), (m2, o2, step) = twins("SGD", sched=True, act=nn.ReLU, lr=0.1, momentum=0.5)
    compiled = jitgrad.compile(step)
    X, y = data()
    for _ in range(5):
        eager(X, y)
        compiled(X, y)
    assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] == 0.025
    for p, q in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())

    def manual(X, y):
        for p in m2.parameters():
            p.grad = None
        loss = ((m2(X) - y) * (m2(X) - y)).mean()
        loss.backward()
        return loss
    cm = jitgrad.compile(manual)
    for _ in range(3):
        loss = cm(X, y)
    grads = [p.grad.numpy().copy() for p in m2.parameters()]
    for p in m2.parameters():
        p.grad = None
    manual(X, y)
    for g, p in zip(grads, m2.parameters()):
        np.testing.assert_array_equal(g, p.grad.numpy())
    assert loss.shape == ()


def test_gradients_accumulate_without_zero_grad():
    m = mlp(2)
    X, y = data()

    def f(X):
        m(X).sum().backward()
    cf = jitgrad.compile(f)
    for _ in range(3):
        cf(X)
    acc = [p.grad.numpy().copy() for p in m.parameters()]
    m.zero_grad()
    f(X)
    for a, p in zip(acc, m.parameters()):
        np.testing.assert_allclose(a, 3 * p.grad.numpy(), rtol=1e-14)


def test_guards_retrace_on_shape_dtype_grad_mode_and_captured_storage():
    m = mlp(3)
    cf = jitgrad.compile(lambda X: m(X))
    X, _ = data(n=4)
    with jitgrad.no_grad():
        a = cf(X)
        b = cf(X)
        np.testing.assert_allclose(a.numpy(), m(X).numpy(), rtol=1e-13)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)
        cf(data(n=5)[0])                      # another shape: a second trace
        assert len(cf.traces) == 2
        w = m[0].weight
        w.data = w.data * 2                   # new storage: the trace that captured it re-traces
        c = cf(X)
        np.testing.assert_allclose(c.numpy(), m(X).numpy(), rtol=1e-13)
    m.eval()                                   # (no train/eval-dependent layer, but a guard)
    with jitgrad.no_grad():
        d = cf(X)
    np.testing.assert_array_equal(c.numpy(), d.numpy())


def test_captured_tensor_requires_grad_or_storage_change_fails_the_guard():
    """holds(): a captured tensor whose requires_grad flips, or whose storage is replaced (even
    by equal values), traces again, and the replay computes what eager does."""
    w = jitgrad.tensor([1., 2., 3.], requires_grad=True)
    c = jitgrad.tensor([2., 2., 2.])
    x = jitgrad.tensor([1., 4., 5.])

    def step(x):
        w.grad = None
        c.grad = None
        (x * w * c).sum().backward()
    cf = jitgrad.compile(step)
    for _ in range(3):
        cf(x)
        assert w.grad.tolist() == [2., 8., 10.] and c.grad is None
    entry = next(iter(cf.traces.values()))
    assert entry.holds()
    c.requires_grad_()
    assert not entry.holds()
    for _ in range(3):
        cf(x)
        assert w.grad.tolist() == [2., 8., 10.] and c.grad.tolist() == [1., 8., 15.]
    c.requires_grad_(False)
    for _ in range(2):
        cf(x)
        assert w.grad.tolist() == [2., 8., 10.] and c.grad is None
    entry = next(iter(cf.traces.values()))
    c.data = jitgrad.tensor([2., 2., 2.])     # equal values, new storage
    assert not entry.holds()
    c.data = jitgrad.tensor([3., 3., 3.])
    for _ in range(3):
        cf(x)
        assert w.grad.tolist() == [3., 12., 15.] and c.grad is None
    assert len(cf.traces) == 1


def test_grad_mode_in_the_guard_key_is_the_calling_threads():
    """The key's grad mode is is_grad_enabled() of the calling thread, also while another thread
    has grad mode off (the key skips the thread-local read only while no thread does)."""
    import threading
    from jitgrad.compiler import _key
    x = jitgrad.tensor([1., 2.])
    cf = jitgrad.compile(lambda x: x * 2)
    cf(x)
    assert _key((x,), {})[0] is True
    with jitgrad.no_grad():
        assert _key((x,), {})[0] is False
        cf(x)
    assert len(cf.traces) == 2
    inside, done, seen = threading.Event(), threading.Event(), []

    def other():
        with jitgrad.no_grad():
            seen.append(_key((x,), {})[0])
            inside.set()
            done.wait(10)
    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(10)
    try:
        assert seen == [False]
        assert _key((x,), {})[0] is True
        assert cf(x).tolist() == [2., 4.] and len(cf.traces) == 2
    finally:
        done.set()
        thread.join()
    assert _key((x,), {})[0] is True


def test_python_numbers_are_guards():
    x = jitgrad.tensor([1.0, 2.0, 3.0])
    cf = jitgrad.compile(lambda x, s: x * s + 1.0)
    assert cf(x, 2.0).tolist() == [3.0, 5.0, 7.0]
    assert cf(x, 2.0).tolist() == [3.0, 5.0, 7.0]
    assert cf(x, 3.0).tolist() == [4.0, 7.0, 10.0]


def test_argument_values_are_read_each_call():
    cf = jitgrad.compile(lambda x, y: (x * y).sum())
    for k in range(4):
        x = jitgrad.tensor(np.arange(5.0) + k)
        y = jitgrad.tensor(np.ones(5) * k)
        assert cf(x, y).item() == float(((np.arange(5.0) + k) * k).sum())


def test_captured_tensor_changed_in_place_is_seen():
    w = jitgrad.tensor([1.0, 2.0])
    cf = jitgrad.compile(lambda x: x * w)
    x = jitgrad.tensor([3.0, 4.0])
    assert cf(x).tolist() == [3.0, 8.0]
    with jitgrad.no_grad():
        w.mul_(10)
    assert cf(x).tolist() == [30.0, 80.0]


_W = jitgrad.tensor([1.0, 1.0, 1.0])


def _bump(x):
    with jitgrad.no_grad():
        _W.abs_()                     # an in-place op compiled replay does not record
    return x * _W


def test_in_place_updates_are_replayed():
    w = jitgrad.tensor([1.0, 2.0])
    g = jitgrad.tensor([0.5, 0.25])

    def f(x):
        with jitgrad.no_grad():
            w.add_(g, alpha=2.0)
            w.mul_(0.5)
            w.sub_(1.0)
        return x * w
    cf = jitgrad.compile(f)
    x = jitgrad.tensor([1.0, 1.0])
    expect = np.array([1.0, 2.0])
    for _ in range(4):
        expect = (expect + 2 * np.array([0.5, 0.25])) * 0.5 - 1
        np.testing.assert_array_equal(cf(x).numpy(), expect)
    np.testing.assert_array_equal(w.numpy(), expect)


def _reseed_and_draw(x):
    jitgrad.manual_seed(0)
    return x + jitgrad.randn(3)


def _accumulate_into_zeros(x):
    acc = jitgrad.zeros(3)
    with jitgrad.no_grad():
        acc += x                 # a fresh zeros each eager call: a replay must not keep adding
    return acc


@pytest.mark.parametrize("body,reason", [
    (lambda x: x * 2 if (x.sum() > 0).item() else x, "item()"),
    (lambda x: x * (x > 0), "tensor made inside"),
    (lambda x: _reseed_and_draw(x), "reseeding"),
    (lambda x: _bump(x), "in-place"),
    (lambda x: x.to(jitgrad.float64), "float32 tensor in a float64 computation"),
    (lambda x: jitgrad.autograd.grad((x * x).sum(), x)[0], "autograd.grad"),
    (lambda x: _accumulate_into_zeros(x), "made inside the function"),
])
def test_unsupported_runs_eagerly_with_a_warning(body, reason):
    x = jitgrad.tensor([1.0, -2.0, 0.5], requires_grad=True)
    cf = jitgrad.compile(body)
    with pytest.warns(UserWarning, match=reason):
        first = cf(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # warned once
        second = cf(x)
    assert isinstance(next(iter(cf.traces.values())), str)
    if reason not in ("in-place",):      # (it changes x each call)
        np.testing.assert_array_equal(first.detach().numpy(), second.detach().numpy())
    strict = jitgrad.compile(body, fullgraph=True)
    with pytest.raises(RuntimeError, match="fullgraph"):
        strict(x)


def test_returning_a_graph_without_backward_replays_as_one_node():
    """A compiled function (not only a module) whose result the caller differentiates: its
    replays hand out one CompiledFunctionBackward node (test_compile_module.py has the rest)."""
    rng = np.random.default_rng(0)
    w = jitgrad.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    f = jitgrad.compile(lambda x, scale: (x @ w).tanh() * scale)
    for call in range(3):
        x = jitgrad.tensor(rng.standard_normal((4, 3)), requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = f(x, 2.0)
        assert out.grad_fn.name() == ("MulBackward0" if call == 0 else "CompiledFunctionBackward")
        gx, gw = jitgrad.autograd.grad((out ** 2).sum(), (x, w))
        ex, ew = jitgrad.autograd.grad((((x @ w).tanh() * 2.0) ** 2).sum(), (x, w))
        np.testing.assert_array_equal(gx.numpy(), ex.numpy())
        np.testing.assert_array_equal(gw.numpy(), ew.numpy())
    m = mlp(4)
    cm = jitgrad.compile(m)
    X, y = data()
    with jitgrad.no_grad():
        a = cm(X)
        b = cm(X)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-13)
    assert cm.training and isinstance(cm.state_dict(), dict)


def test_compile_signature_and_errors():
    f = jitgrad.compile(lambda x: x + 1, fullgraph=False, dynamic=None, backend="inductor",
                        mode="max-autotune", options=None)
    assert f(jitgrad.tensor([1.0])).tolist() == [2.0]
    assert jitgrad.compile(disable=True)(len) is len

    @jitgrad.compile
    def g(x):
        return x * x
    assert g(jitgrad.tensor([3.0])).tolist() == [9.0]
    with pytest.raises(TypeError, match="callable"):
        jitgrad.compile(5)


def test_wrong_argument_on_replay_is_a_guard_miss():
    cf = jitgrad.compile(lambda x: (x * x).sum())
    cf(jitgrad.tensor([1.0, 2.0]))
    assert cf(jitgrad.tensor([1.0, 2.0, 3.0])).item() == 14.0
    assert cf(jitgrad.tensor([1.0, 2.0], dtype=jitgrad.float32)).item() == 5.0
    assert cf("not a tensor" and jitgrad.tensor([[2.0]])).item() == 4.0


def test_trace_cache_is_bounded():
    cf = jitgrad.compile(lambda x: x * 2.0)
    with pytest.warns(UserWarning, match="argument signatures"):
        for n in range(1, 51):
            assert cf(jitgrad.ones(n)).sum().item() == 2.0 * n
    assert len(cf.traces) == jitgrad.compiler.CACHE_SIZE


def test_saved_operands_are_read_where_the_forward_wrote_them():
    """A mul of two computed tensors, a tanh, a div: their rows save operands (what their formulas
    read), which the replay's backward reads in v, not from copies; a parameter operand is outside
    v and is still saved. Every call matches an eager twin bit for bit, also with create_graph
    (tanh, not sigmoid: float64 tanh is jitgrad's own in both, where numpy's vectorised exp may
    differ from the C library's in the last bit, see docs/design.md)."""
    from jitgrad.engine.loop import F_APART, FLAGS, SAVED_AT
    from jitgrad.engine.replay import P_ROW, P_S

    def step(x, w, v, c):
        h = jitgrad.tanh(x @ w)
        u = jitgrad.tanh(x @ v)
        loss = (h * u).sum() + (h / (u + 2)).sum() + (h * c).sum()
        gx, = jitgrad.autograd.grad(loss, x, create_graph=True)
        (loss + (gx * gx).sum()).backward()
        return loss
    rng = np.random.default_rng(3)
    w0, v0 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    ws, vs, cs = ([jitgrad.tensor(a, requires_grad=True) for _ in range(2)]
                  for a in (w0, v0, rng.standard_normal((5, 3))))
    cf = jitgrad.compile(step, fullgraph=True)
    for k in range(4):
        x = rng.standard_normal((5, 3))
        xs = [jitgrad.tensor(x, requires_grad=True) for _ in range(2)]
        got, want = cf(xs[0], ws[0], vs[0], cs[0]), step(xs[1], ws[1], vs[1], cs[1])
        assert got.item() == want.item()
        for a, b in (xs, ws, vs, cs):
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
            a.grad = b.grad = None
    program = next(iter(cf.traces.values())).program
    rows = program.prog[program.prog[:, P_ROW] >= 0, P_ROW]
    in_v = program.rows[rows, SAVED_AT] < program.v.size
    assert in_v.sum() >= 4 and (program.rows[rows, FLAGS] & F_APART).any()
    assert (program.prog[program.prog[:, P_ROW] >= 0, P_S][in_v] == -1).all()   # (nothing copied)
    assert (~in_v & (program.rows[rows, SAVED_AT] >= 0)).any()       # h * c's c: saved


def test_products_read_their_operands_where_the_forward_wrote_them():
    """mm, bmm, mv and dot rows save their operands (what their formulas read): a computed one is
    read in v by the replay's backward, a parameter is still copied (then the other alone is read
    in place). Every call, with an SGD update, matches an eager twin bit for bit."""
    from jitgrad.engine.loop import F_APART, FLAGS, SAVED_AT
    from jitgrad.engine.replay import P_ROW, P_S

    def step(x, w1, w2, c, v, ps):
        for p in ps:
            p.grad = None
        h = jitgrad.relu(x @ w1)                    # x outside v, w1 a parameter: copies
        s = h @ w2                                  # h in v, w2 a parameter
        u = c @ h                                   # c a parameter, h in v
        b = jitgrad.bmm(h.reshape(2, 3, 4), (h * 2).reshape(2, 4, 3))    # both in v
        loss = s.sum() + u.sum() + b.sum() + jitgrad.dot(s, s) + (h.t() @ h).sum() + jitgrad.mv(h, v).sum()
        loss.backward()
        with jitgrad.no_grad():
            for p in ps:
                p -= 0.01 * p.grad
        return loss
    rng = np.random.default_rng(5)
    init = [rng.standard_normal(sh) for sh in ((6, 5), (5, 4), (4,), (2, 6), (4,))]
    twins = [[jitgrad.tensor(a, requires_grad=True) for a in init] for _ in range(2)]
    cf = jitgrad.compile(step, fullgraph=True)
    for k in range(4):
        x = jitgrad.tensor(rng.standard_normal((6, 5)))
        got, want = cf(x, *twins[0][1:], twins[0][1:]), step(x, *twins[1][1:], twins[1][1:])
        assert got.item() == want.item()
        for a, b in zip(*twins):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
            if a.grad is not None:
                np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    program = next(iter(cf.traces.values())).program
    ins = program.prog[program.prog[:, P_ROW] >= 0]
    rows = program.rows[ins[:, P_ROW]]
    apart = (rows[:, FLAGS] & F_APART) != 0
    assert apart.sum() >= 4
    whole = rows[:, SAVED_AT] < program.v.size
    assert (whole & (ins[:, P_S] == -1) & apart).any()             # bmm, h.t() @ h: nothing copied
    assert (apart & (ins[:, P_S] >= 0)).sum() >= 2                  # a parameter copied, h read in v


def test_create_graph_through_broadcast_operands_replays():
    """A formula reading a broadcast operand (a parameter or a constant of another shape) reads
    it expanded by an op the trace records, so the step replays, as eager, bit for bit."""
    def step(x, c, d):
        h = jitgrad.tanh(x)
        gx, = jitgrad.autograd.grad((h * c).sum() + (h * d).sum(), x, create_graph=True)
        (gx * gx).sum().backward()
        return gx
    cf = jitgrad.compile(step, fullgraph=True)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x0, c0, d0 = rng.standard_normal((5, 3)), rng.standard_normal(3), rng.standard_normal(())
        a, b = ([jitgrad.tensor(x0, requires_grad=True), jitgrad.tensor(c0, requires_grad=True),
                 jitgrad.tensor(d0)] for _ in range(2))
        np.testing.assert_array_equal(cf(*a).detach().numpy(), step(*b).detach().numpy())
        for p, q in zip(a[:2], b[:2]):
            np.testing.assert_array_equal(p.grad.numpy(), q.grad.numpy())
    assert not isinstance(next(iter(cf.traces.values())), str)


def test_buffers_are_freed_with_the_function():
    m = mlp(5)
    opt = jitgrad.optim.SGD(m.parameters(), lr=0.01)
    cf = jitgrad.compile(make_step(m, opt))
    X, y = data()
    cf(X, y)
    cf(X, y)
    buf = weakref.ref(next(iter(cf.traces.values())).program.sv)     # (v is its start)
    del cf
    gc.collect()
    assert buf() is None


def test_the_first_call_frees_its_intermediates_before_building_the_program():
    # (the trace holds every value it gave a slot while the function runs, so ids stay unique;
    # held past it, they and the program's new buffers made the heap grow for each new model)
    m = mlp(5)
    opt = jitgrad.optim.SGD(m.parameters(), lr=0.01)
    X, y = data()
    values = []
    step = make_step(m, opt)

    def watched(X, y):
        h = X * 2.0                 # (no gradient: no tape row holds its value)
        values.append(weakref.ref(h._a))
        return step(X, y)
    cf = jitgrad.compile(watched)
    built = jitgrad.compiler.program.Program.__init__

    def program(self, *args, **kwargs):
        assert values[-1]() is None, "an intermediate value outlived the traced call"
        built(self, *args, **kwargs)
    jitgrad.compiler.program.Program.__init__ = program
    try:
        gc.disable()
        cf(X, y)
    finally:
        gc.enable()
        jitgrad.compiler.program.Program.__init__ = built
    assert isinstance(next(iter(cf.traces.values())), jitgrad.compiler._Compiled)


def test_a_sweep_of_compiled_models_keeps_the_tape_bounded(monkeypatch):
    # a sweep records in its models' first calls only, each under a trace that pins the tape's
    # rows: the trace compacts a tape past its limits first, or nothing would (limits lowered
    # here so that 24 small models pass them)
    import jitgrad.engine.tape as tape
    TAPE = tape.TAPE
    TAPE.compact()
    monkeypatch.setattr(tape, "_MIN_LIMIT", 64)
    monkeypatch.setattr(TAPE, "rlimit", 64)
    X, y = data(n=64)
    worst, rows = 0, None
    try:
        for seed in range(24):
            m = mlp(seed)
            step = jitgrad.compile(make_step(m, jitgrad.optim.SGD(m.parameters(), lr=0.01)))
            before = len(TAPE.outs)
            step(X, y)
            step(X, y)
            rows = rows or len(TAPE.outs) - before        # (one trace's rows)
            worst = max(worst, len(TAPE.outs) - TAPE.rlimit)
        assert rows > 0 and 24 * rows > 2 * TAPE.rlimit      # (enough to pass the limit twice)
        assert worst <= rows, "the tape grew past its limit by more than one trace"
    finally:
        monkeypatch.undo()
        TAPE.compact()


def test_a_sweep_of_compiled_models_saves_into_the_same_arena_space(monkeypatch):
    # a trace keeps its rows' saved values until the Program copied them; then the space of the
    # rows its backward freed is given back, as an eager backward does: a sweep's next model
    # saves into the same (warm) memory, not past it
    from jitgrad.compiler.trace import Trace
    from jitgrad.engine.tape import TAPE
    release, lengths = Trace.release, []

    def measured(trace):
        held = TAPE.alen
        release(trace)
        lengths.append((held, TAPE.alen))
    monkeypatch.setattr(Trace, "release", measured)
    X, y = data(n=512)
    for seed in range(6):
        m = mlp(seed)
        step = jitgrad.compile(make_step(m, jitgrad.optim.SGD(m.parameters(), lr=0.01)))
        step(X, y)
    assert len(lengths) == 6
    saves = lengths[0][0] - lengths[0][1]       # (one trace's: 512 rows' activations at least)
    assert saves > 512 * 8
    # (a freed row that saved no tensor keeps its constants: a backward may pass it again)
    assert all(abs(held - after - saves) <= 8 for held, after in lengths)
    assert lengths[-1][1] - lengths[0][1] <= 8 * 5


def test_many_replays_keep_memory_flat():
    import tracemalloc
    m = mlp(6)
    opt = jitgrad.optim.SGD(m.parameters(), lr=0.01)
    cf = jitgrad.compile(make_step(m, opt))
    X, y = data()
    tracemalloc.start()
    for _ in range(2000):          # (Numba's and numpy's caches fill in the first thousand)
        cf(X, y)
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(3000):
        cf(X, y)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 16 * 1024


class _Double(jitgrad.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * 2


@pytest.mark.parametrize("make", ["function", "hook"])
def test_python_nodes_run_eagerly_with_a_warning(make):
    """A custom Function or a tensor hook has a Python backward: the step runs eagerly (the
    issue's alternative to pausing the compiled replay), with eager's gradients."""
    w = jitgrad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    seen = []

    def step(x):
        w.grad = None
        h = _Double.apply(w * x) if make == "function" else w * x
        if make == "hook":
            h.register_hook(lambda g: seen.append(1) or g * 3)
        (h * h).sum().backward()
        return w.grad
    cf = jitgrad.compile(step)
    x = jitgrad.tensor([0.5, 0.5, 0.5])
    with pytest.warns(UserWarning, match="runs eagerly"):
        first = cf(x).numpy().copy()
    second = cf(x).numpy()
    factor = 8 * 0.25 if make == "function" else 2 * 3 * 0.25     # d/dw of (c w x)^2 = 2 c^2 x^2 w
    np.testing.assert_allclose(first, factor * np.array([1.0, -2.0, 3.0]))
    np.testing.assert_allclose(second, first)
    if make == "hook":
        assert len(seen) == 2


def test_factory_constants_made_inside_the_function_are_replayed():
    w = jitgrad.tensor([0.5, -1.0, 2.0], requires_grad=True)

    def step(x):
        w.grad = None
        shift = jitgrad.full((3,), 0.25) + jitgrad.ones(3) * jitgrad.arange(3.0)
        loss = ((x + shift) * w).sum()
        loss.backward()
        return loss
    cf = jitgrad.compile(step, fullgraph=True)
    for k in range(3):
        x = jitgrad.tensor([1.0, 2.0, 3.0]) * k
        got = cf(x).item()
        assert got == step(x).item() == float(((x.numpy() + [0.25, 1.25, 2.25]) * w.detach().numpy()).sum())
    assert not isinstance(next(iter(cf.traces.values())), str)


def test_physics_informed_step_with_create_graph_replays():
    """u_x and u_xx by autograd.grad(create_graph=True) inside the step, then backward and Adam:
    the gradient walks are ops like any other, so the whole step replays."""
    def model_and_opt():
        jitgrad.manual_seed(3)
        net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(),
                            nn.Linear(8, 1)).double()
        return net, jitgrad.optim.Adam(net.parameters(), lr=1e-2)

    def make(net, opt):
        def step(x, f, edge):
            opt.zero_grad()
            u = net(x)
            ux = jitgrad.autograd.grad(u, x, jitgrad.ones_like(u), create_graph=True)[0]
            uxx = jitgrad.autograd.grad(ux, x, jitgrad.ones_like(ux), create_graph=True)[0]
            r = uxx - f
            ue = net(edge)
            loss = (r * r).mean() + (ue * ue).mean()
            loss.backward()
            opt.step()
            return loss
        return step
    (n1, o1), (n2, o2) = model_and_opt(), model_and_opt()
    eager, compiled = make(n1, o1), jitgrad.compile(make(n2, o2), fullgraph=True)
    rng = np.random.default_rng(0)
    for _ in range(4):
        xv = rng.uniform(0, 1, (16, 1))
        x1 = jitgrad.tensor(xv, requires_grad=True)
        x2 = jitgrad.tensor(xv, requires_grad=True)
        f = jitgrad.tensor(-np.pi ** 2 * np.sin(np.pi * xv))
        edge = jitgrad.tensor([[0.0], [1.0]], dtype=jitgrad.float64)
        np.testing.assert_allclose(compiled(x2, f, edge).item(), eager(x1, f, edge).item(),
                                   rtol=1e-13)
        for a, b in zip(n1.parameters(), n2.parameters()):
            np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-12,
                                       atol=1e-15)
            assert (a.grad is None) == (b.grad is None)
    assert not isinstance(next(iter(compiled.traces.values())), str)


def test_random_draws_are_redrawn_each_replay_as_eagerly():
    """Dropout masks and randn noise: each replay draws anew from the same generator, so the
    compiled step equals the eager one under manual_seed (and the stream moves as eagerly)."""
    def model():
        jitgrad.manual_seed(5)
        return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1)).double()

    def make(m):
        opt = jitgrad.optim.SGD(m.parameters(), lr=0.1)

        def step(X):
            opt.zero_grad()
            mu = m(X)
            z = mu + 0.1 * jitgrad.randn_like(mu)
            loss = (z * z).mean()
            loss.backward()
            opt.step()
            return loss
        return step
    m1, m2 = model(), model()
    eager, compiled = make(m1), jitgrad.compile(make(m2), fullgraph=True)
    X, _ = data()
    jitgrad.manual_seed(11)
    want = [eager(X).item() for _ in range(4)]
    after_eager = jitgrad.rand(2).numpy()
    jitgrad.manual_seed(11)
    got = [compiled(X).item() for _ in range(4)]
    after_compiled = jitgrad.rand(2).numpy()
    assert not isinstance(next(iter(compiled.traces.values())), str)
    assert len(set(got)) == 4                     # new masks every call
    np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_array_equal(after_compiled, after_eager)
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_manual_sgd_step_equals_eager_and_torch(dtype):
    """The benchmarks' step (p.grad = None, mm + bias, manual update) replays as one compiled
    call (run_block), the products written into their slots; a call that keeps .grad
    accumulates through the other path. Equal to eager bit for bit, and to torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    shapes = [(5, 7), (7,), (7, 3), (3,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    X, Y = rng.standard_normal((11, 5)).astype(dtype), rng.standard_normal((11, 3)).astype(dtype)

    def make(lib):
        ps = [lib.tensor(a.copy(), requires_grad=True) for a in init]
        x, y = lib.tensor(X), lib.tensor(Y)

        def step(keep=False):
            if not keep:
                for p in ps:
                    p.grad = None
            h = (x @ ps[0] + ps[1]).relu()
            out = h @ ps[2] + ps[3]
            loss = ((out - y) ** 2).mean() + 1e-2 * (ps[2] * ps[2]).sum()
            loss.backward()
            with lib.no_grad():
                for p in ps:
                    p -= 0.1 * p.grad
            return loss
        return ps, step

    (pe, eager), (pc, traced), (pt, ref) = make(jitgrad), make(jitgrad), make(torch)
    compiled = jitgrad.compile(traced)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    for k in range(4):
        le, lc, lt = eager(), compiled(), ref()
        assert le.item() == lc.item()
        np.testing.assert_allclose(lc.item(), lt.item(), **tol)
        for a, b, c in zip(pe, pc, pt):
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
            np.testing.assert_allclose(b.grad.numpy(), c.grad.numpy(), **tol)
            np.testing.assert_allclose(b.detach().numpy(), c.detach().numpy(), **tol)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1
    for k in range(3):          # .grad kept: accumulated into (traced, then replayed)
        le, lc, lt = eager(True), compiled(True), ref(True)
        assert le.item() == lc.item()
        for a, b, c in zip(pe, pc, pt):
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
            np.testing.assert_allclose(b.grad.numpy(), c.grad.numpy(), **tol)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 2


def test_tensor_of_python_numbers_inside_a_step_is_a_constant_and_of_an_array_is_not():
    """torch.tensor([...]) of Python numbers made inside a step replays as a constant, as the
    other factories; of a numpy array (which may change between calls) the step runs eagerly."""
    import warnings
    x = jitgrad.tensor(np.arange(6.).reshape(2, 3), requires_grad=True)
    scale = np.array([1., 2., 3.])

    def from_list():
        x.grad = None
        (x * jitgrad.tensor([1., 2., 3.], dtype=jitgrad.float64)).sum().backward()

    def from_array():
        x.grad = None
        (x * jitgrad.tensor(scale)).sum().backward()
    for fn, replays in ((from_list, True), (from_array, False)):
        compiled = jitgrad.compile(fn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled()
            scale[0] = 5.
            compiled()
        assert (not isinstance(next(iter(compiled.traces.values())), str)) == replays
        np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to([1., 2., 3.] if replays else scale, (2, 3)))
        scale[0] = 1.


def _layer_and_inputs(seed, n):
    """A (3, 4) weight and a bias that require grad, and n (6, 3) inputs."""
    rng = np.random.default_rng(seed)
    w = jitgrad.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = jitgrad.tensor(rng.standard_normal(4), requires_grad=True)
    return w, b, [jitgrad.tensor(rng.standard_normal((6, 3))) for _ in range(n)]


def test_a_dropped_grad_is_reused_only_where_no_one_can_tell():
    """A replay's new .grad may take the object and storage of the one `p.grad = None` dropped
    in the same call, only when nothing else reaches them: a held .grad, a held view of its
    array and a weak reference to it see what eager gives (values kept, a dead object)."""
    w, b, xs = _layer_and_inputs(5, 7)

    def step(x):
        w.grad = None
        b.grad = None
        ((x @ w + b).relu() * (x @ w)).sum().backward()

    def eager(x):
        step(x)
        return w.grad.numpy().copy(), b.grad.numpy().copy()
    ref = [eager(x) for x in xs]

    def check(k):
        np.testing.assert_array_equal(w.grad.numpy(), ref[k][0])
        np.testing.assert_array_equal(b.grad.numpy(), ref[k][1])
    compiled = jitgrad.compile(step)
    for k in range(3):              # traced, then replayed
        compiled(xs[k])
        check(k)
    held, view = w.grad, b.grad.numpy()[1:]
    compiled(xs[3])
    check(3)
    assert w.grad is not held
    np.testing.assert_array_equal(held.numpy(), ref[2][0])
    np.testing.assert_array_equal(view, ref[2][1][1:])
    dead = weakref.ref(w.grad)
    compiled(xs[4])
    check(4)
    assert dead() is None
    del held, view
    for k in (5, 6):
        compiled(xs[k])
        check(k)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1


def test_a_reused_grad_is_as_new_whatever_was_done_to_it_before():
    """A step that sets its leaves' .grad to None and then computes them hands out, in a replay,
    the last .grad object when nothing else reaches it: as a new tensor, whatever was done to it
    while it was held (requires_grad_, an in-place op, a view, its array reshaped in place)."""
    w, b, xs = _layer_and_inputs(6, 8)

    def step(x):
        w.grad = None
        b.grad = None
        ((x @ w + b).tanh() ** 2).sum().backward()
    ref = []
    for x in xs:
        step(x)
        ref.append((w.grad.numpy().copy(), b.grad.numpy().copy()))
    compiled = jitgrad.compile(step)

    def check(k):
        for p, want in zip((w, b), ref[k]):
            g = p.grad
            np.testing.assert_array_equal(g.numpy(), want)
            assert g.is_leaf and not g.requires_grad and g.grad_fn is None and g.grad is None
            assert g._version == 0 and g.shape == p.shape
    mischief = [lambda: w.grad.requires_grad_(), lambda: b.grad.add_(1.0),
                lambda: w.grad[1:].mul_(2.0), lambda: setattr(b.grad.numpy(), "shape", (2, 2))]
    compiled(xs[0])
    check(0)
    compiled(xs[1])
    check(1)
    ids = id(w.grad), id(b.grad)
    compiled(xs[2])                 # nothing held them: the same objects, reset as new
    check(2)
    assert (id(w.grad), id(b.grad)) == ids
    for k, act in enumerate(mischief, 3):
        act()
        compiled(xs[k])
        check(k)
    entry = next(v for v in compiled.traces.values() if not isinstance(v, str))
    assert entry.program.only is not None and entry.program.only.fresh is not None


@pytest.mark.parametrize("also_clears", [False, True], ids=["its leaves", "one more"])
def test_a_grad_written_in_place_after_the_backward_is_handed_out_as_written(also_clears):
    """A step that scales its .grads in place after the backward (as clip_grad_norm_ does)
    hands out the scaled values in every replay, also once the last call's .grad object is
    taken back (a reused storage is written before the ops that scale it). also_clears: the
    step sets one more leaf's .grad to None, which takes the other path of Program.run."""
    rng = np.random.default_rng(7)
    w = jitgrad.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    other = jitgrad.zeros(2, requires_grad=True)
    start = w.detach().clone()
    xs = [jitgrad.tensor(rng.standard_normal((5, 3))) for _ in range(6)]

    def step(x):
        w.grad = None
        if also_clears:
            other.grad = None
        ((x @ w).tanh() ** 2).sum().backward()
        with jitgrad.no_grad():
            w.grad.mul_(0.5)
            w.sub_(0.1 * w.grad)

    def trajectory(fn):
        with jitgrad.no_grad():
            w.copy_(start)
        out = []
        for x in xs:
            fn(x)
            out.append((w.grad.numpy().copy(), w.detach().numpy().copy()))
        return out
    compiled = jitgrad.compile(step)
    for (eager_grad, eager_w), (grad, w_now) in zip(trajectory(step), trajectory(compiled)):
        np.testing.assert_array_equal(grad, eager_grad)
        np.testing.assert_array_equal(w_now, eager_w)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1


def test_a_returned_grad_is_the_leafs_grad_as_eagerly():
    """A step returning a parameter's .grad returns that .grad object, not a copy of its
    values, in every replay (so an in-place change through it is the .grad's, as eagerly)."""
    rng = np.random.default_rng(8)
    w = jitgrad.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    xs = [jitgrad.tensor(rng.standard_normal((4, 3))) for _ in range(4)]

    def step(x):
        w.grad = None
        loss = (x @ w).sin().sum()
        loss.backward()
        return loss, w.grad
    want = [step(x)[1].numpy().copy() for x in xs]
    compiled = jitgrad.compile(step)
    for x, grad in zip(xs, want):
        loss, g = compiled(x)
        assert g is w.grad
        np.testing.assert_array_equal(g.numpy(), grad)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1


def test_a_module_parameter_replaced_between_calls_is_traced_again():
    """`m.weight = Parameter(...)` between calls (a layer initialised anew): the replay must
    not go on reading and updating the old parameter."""
    def run(compile_it):
        jitgrad.manual_seed(0)
        lin = nn.Linear(3, 1).double()
        opt = jitgrad.optim.SGD(lin.parameters(), lr=0.1)
        x = jitgrad.ones(4, 3, dtype=jitgrad.float64)

        def step(x):
            opt.zero_grad()
            loss = (lin(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        fn = jitgrad.compile(step) if compile_it else step
        losses = []
        for i in range(5):
            if i == 3:
                lin.weight = nn.Parameter(jitgrad.full((1, 3), 0.5, dtype=jitgrad.float64))
                opt.param_groups[0]["params"][0] = lin.weight
            losses.append(fn(x).item())
        return losses, lin.weight.detach().numpy().copy(), lin.weight.grad.numpy().copy()
    for want, got in zip(run(False), run(True)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_returned_tensors_from_outside_are_what_eager_returns():
    """A returned argument is the call's argument; a returned w.detach() a new tensor on w's
    storage (not w itself); a returned view of an argument or a .grad cannot be a replay's
    copy: that step runs eagerly, with its warning."""
    w = jitgrad.tensor(np.arange(6.).reshape(3, 2), requires_grad=True)

    def detached(x):
        w.grad = None
        (x @ w).sum().backward()
        return x, w.detach()

    compiled = jitgrad.compile(detached)
    for k in range(3):
        x = jitgrad.ones(4, 3, dtype=jitgrad.float64) * k
        got_x, got_w = compiled(x)
        assert got_x is x and got_w is not w and not got_w.requires_grad
        got_w.mul_(1.0)                         # eager's w.detach() allows it
        assert np.shares_memory(got_w.numpy(), w.detach().numpy())
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1

    def view_of_grad(x):
        w.grad = None
        (x @ w).sum().backward()
        return w.grad[0]
    compiled = jitgrad.compile(view_of_grad)
    with pytest.warns(UserWarning, match="a view of a tensor from outside"):
        compiled(jitgrad.ones(4, 3, dtype=jitgrad.float64))
    for _ in range(2):
        got = compiled(jitgrad.ones(4, 3, dtype=jitgrad.float64))
        assert np.shares_memory(got.numpy(), w.grad.numpy())


def _as_eagerly(make, calls):
    """Run make()'s step on each call's arguments eagerly, then compiled, from fresh state
    each (make: -> (step, observe)); after every call compare observe() and the result or the
    exception (type and message). Returns the compiled function."""
    runs = []
    for compile_it in (False, True):
        jitgrad.manual_seed(0)
        step, observe = make()
        fn = jitgrad.compile(step) if compile_it else step
        seen = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for args in calls:
                try:
                    out = fn(*args())
                    got = [np.asarray(v.detach().numpy() if isinstance(v, jitgrad.Tensor) else v)
                           for v in (out if isinstance(out, tuple) else (out,))]
                except Exception as e:              # noqa: BLE001 (compared with eager's)
                    got = [type(e).__name__, str(e)]
                seen.append((got, [np.asarray(v) for v in observe()]))
        runs.append(seen)
    for (want, want_state), (got, got_state) in zip(*runs):
        assert len(got) == len(want) and len(got_state) == len(want_state)
        for a, b in zip(got + got_state, want + want_state):
            np.testing.assert_array_equal(a, b)
    return fn


def _grads(*ps):
    return [np.nan if p.grad is None else p.grad.numpy().copy() for p in ps]


def test_module_zero_grad_in_a_step_is_replayed():
    def make():
        m = nn.Linear(4, 1).double()

        def step(x):
            m.zero_grad()
            m(x).pow(2).sum().backward()
        return step, lambda: _grads(m.weight, m.bias)
    xs = [jitgrad.randn(5, 4, dtype=jitgrad.float64) for _ in range(4)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert any(not isinstance(v, str) for v in fn.traces.values())


def test_arguments_that_are_one_tensor_or_not_a_leaf_are_another_trace():
    """Traced with one tensor for two arguments, a call with two (and the reverse) is not that
    trace; nor is a non-leaf argument where the trace had a leaf: its gradient must reach the
    graph behind it."""
    a, b = (jitgrad.randn(3, 3, dtype=jitgrad.float64) for _ in range(2))
    g = [jitgrad.randn(3, 3, dtype=jitgrad.float64, requires_grad=True) for _ in range(3)]

    def make():
        w = jitgrad.randn(3, 3, dtype=jitgrad.float64, requires_grad=True)
        for t in g:                 # (shared by the eager and the compiled run)
            t.grad = None

        def step(x, y):
            w.grad = None
            ((x @ w) * y).sum().backward()
        return step, lambda: _grads(w, *g)
    _as_eagerly(make, [lambda: (a, a), lambda: (a, b), lambda: (b, a), lambda: (a, a)])
    _as_eagerly(make, [lambda: (g[0], g[1]), lambda: (g[2], g[2]), lambda: (g[0], g[1])])
    enc = jitgrad.randn(3, 3, dtype=jitgrad.float64, requires_grad=True)

    def make_head():
        w = jitgrad.randn(3, 1, dtype=jitgrad.float64, requires_grad=True)
        enc.grad = g[0].grad = None

        def step(h):
            w.grad = None
            (h @ w).pow(2).sum().backward()
        return step, lambda: _grads(w, enc)
    _as_eagerly(make_head, [lambda: (g[0],), lambda: (a @ enc,), lambda: (b @ enc,)])


def test_a_replay_raises_where_eager_raises_after_what_eager_did_before():
    """An out-of-range class target (checked before the replay: the call then runs eagerly),
    bce's input outside [0, 1] (met by the forward kernel), a singular solve after the
    backward: each raises eager's error with eager's state (updates done, .grad set)."""
    x = jitgrad.randn(5, 4, dtype=jitgrad.float64)
    targets = [jitgrad.tensor([0, 1, 2, 1, 0]), jitgrad.tensor([0, 1, 5, 2, 1])]

    def make_ce():
        m = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)).double()
        opt = jitgrad.optim.SGD(m.parameters(), lr=0.1)

        def step(x, y):
            opt.zero_grad()
            m(x).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, lambda: [p.detach().numpy().copy() for p in m.parameters()] + _grads(m[0].weight)
    _as_eagerly(make_ce, [lambda t=t: (x, t) for t in (targets[0], targets[0], targets[1], targets[0])])
    scales = [1.0, 1.0, 3.0, 1.0]

    def make_bce():
        w = jitgrad.randn(4, 1, dtype=jitgrad.float64, requires_grad=True)
        y = jitgrad.rand(5, 1, dtype=jitgrad.float64)

        def step(x, q):
            w.grad = None
            loss = nn.functional.binary_cross_entropy((x @ w).sigmoid() * q, y)
            loss.backward()
            with jitgrad.no_grad():
                w.sub_(0.1 * w.grad)
            return loss
        return step, lambda: [w.detach().numpy().copy()] + _grads(w)
    _as_eagerly(make_bce, [lambda q=q: (x, jitgrad.full((5, 1), q, dtype=jitgrad.float64))
                           for q in scales])
    mats = [jitgrad.randn(3, 3, dtype=jitgrad.float64) for _ in range(2)] + \
        [jitgrad.ones(3, 3, dtype=jitgrad.float64)] + [jitgrad.randn(3, 3, dtype=jitgrad.float64)]

    def make_solve():
        w = jitgrad.randn(3, 3, dtype=jitgrad.float64, requires_grad=True)

        def step(a):
            w.grad = None
            (w ** 2).sum().backward()
            with jitgrad.no_grad():
                w.sub_(0.1 * w.grad)
            return jitgrad.linalg.solve(a, w).sum().detach()
        return step, lambda: [w.detach().numpy().copy()] + _grads(w)
    _as_eagerly(make_solve, [lambda a=a: (a,) for a in mats])


def test_a_replay_stopped_in_its_forward_is_the_eager_call():
    """A forward kernel meeting input eager rejects before the step wrote anything outside (a
    singular inverse, then a dropout mask drawn after it): the replay puts the generator back
    and the call runs eagerly, so it raises eager's error with eager's Python side effects and
    draws (none after the failing op: the stream goes on as eager's; a replay that raised drew
    them all before its compiled call)."""
    a_good = (jitgrad.eye(3, dtype=jitgrad.float64) * 2 + 0.1).requires_grad_()
    singular = jitgrad.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [4.0, 5.0, 6.0]], dtype=jitgrad.float64,
                              requires_grad=True)
    b = jitgrad.ones(3, 3, dtype=jitgrad.float64)
    runs = []
    for compiled in (False, True):
        jitgrad.manual_seed(0)
        drop = nn.Dropout(0.5)
        seen = []

        def step(a):
            seen.append(len(seen))
            x = jitgrad.linalg.inv(a)
            return (x * drop(b)).sum().detach()
        fn = jitgrad.compile(step, fullgraph=True) if compiled else step
        out = [fn(a_good).item(), fn(a_good).item()]
        with pytest.raises(RuntimeError, match="singular"):
            fn(singular)
        out.append(fn(a_good).item())
        runs.append((out, jitgrad.rand(3).tolist()))
    assert runs[0] == runs[1]
    assert seen == [0, 1]           # (the trace, the failing call: a replay runs no Python)


def _scaled_by_global(x, w):
    w.grad = None
    loss = (x * SCALE_NOW @ w).sin().sum()
    loss.backward()
    return loss


SCALE_NOW = 1.0


def test_what_a_trace_takes_as_constants_is_guarded():
    """Rebinding what the step reads (a module's setting, a closure's tensor or number, a
    global) between calls is seen, as eagerly: the call is traced again."""
    global SCALE_NOW
    x = jitgrad.randn(5, 4, dtype=jitgrad.float64)

    def make():
        m = nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.1), nn.Dropout(0.5), nn.Linear(6, 1)).double()
        w = jitgrad.ones(4, 1, dtype=jitgrad.float64, requires_grad=True)
        k = 2.0

        def step(x):
            nonlocal w
            w.grad = None
            loss = m(x).sum() + ((x * k) @ w).sum()
            loss.backward()
            return loss

        def observe():
            nonlocal w, k
            calls[0] += 1
            if calls[0] == 1:
                m[2].p = 0.0
            elif calls[0] == 2:
                m[1].negative_slope = 0.9
            elif calls[0] == 3:
                w = jitgrad.full((4, 1), 0.5, dtype=jitgrad.float64, requires_grad=True)
            elif calls[0] == 4:
                k = 3.0
            return _grads(m[0].weight, w)
        calls = [0]
        return step, observe
    _as_eagerly(make, [lambda: (x,)] * 6)
    w = jitgrad.ones(4, 1, dtype=jitgrad.float64, requires_grad=True)
    compiled = jitgrad.compile(_scaled_by_global)
    try:
        for scale in (1.0, 1.0, 2.0, 2.0):
            SCALE_NOW = scale
            want = _scaled_by_global(x, w).item()
            assert compiled(x, w).item() == want
    finally:
        SCALE_NOW = 1.0


def test_a_step_returning_a_tensor_of_a_retained_graph_runs_eagerly():
    """The caller may backward through it again, as eagerly: a replay's values cannot."""
    m = nn.Linear(4, 2).double()

    def step(x):
        m.weight.grad = None
        m.bias.grad = None
        out = m(x)
        out.pow(2).mean().backward(retain_graph=True)
        return out
    compiled = jitgrad.compile(step)
    with pytest.warns(UserWarning, match="retain_graph=True"):
        compiled(jitgrad.randn(5, 4, dtype=jitgrad.float64))
    out = compiled(jitgrad.randn(5, 4, dtype=jitgrad.float64))
    out.sum().backward()
    assert out.requires_grad and out.grad_fn is not None


def test_a_replay_that_raises_leaves_the_grads_it_set_to_none_none():
    """As eagerly: the step sets .grad to None and then its forward raises; the next call
    replays from there as if nothing happened."""
    from jitgrad import linalg as L
    w = jitgrad.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=jitgrad.float64, requires_grad=True)

    def step(x):
        w.grad = None
        L.cholesky(x * w).sum().backward()
    good, bad = jitgrad.ones(2, 2, dtype=jitgrad.float64), jitgrad.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=jitgrad.float64)
    compiled = jitgrad.compile(step, fullgraph=True)
    compiled(good)
    compiled(good)
    want = w.grad.numpy().copy()
    for fn in (step, compiled):
        w.grad = jitgrad.zeros(2, 2, dtype=jitgrad.float64)
        with pytest.raises(L.LinAlgError):
            fn(bad)
        assert w.grad is None
        fn(good)
        np.testing.assert_array_equal(w.grad.numpy(), want)
    compiled(good)              # w.grad the last call's, from a replay: taken and written into
    with pytest.raises(L.LinAlgError):
        compiled(bad)
    assert w.grad is None
    compiled(good)
    np.testing.assert_array_equal(w.grad.numpy(), want)


def _folds(cf):
    """How many MM_BIAS rows (x @ W + b folded, see program._fold_bias_adds) cf's program has."""
    from jitgrad.engine.loop import OP
    from jitgrad.ops.linalg import MM_BIAS
    program = next(v for v in cf.traces.values() if not isinstance(v, str)).program
    return int((program.rows[:, OP] == MM_BIAS).sum())


# name: (the step's output from x and the parameters, their shapes (x first), whether each
# requires grad, how many x @ W + b the program folds)
BIAS_ADDS = {
    "x@W+b": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (4,)], [0, 1, 1], 1),
    "b+x@W": (lambda x, w, b: b + x @ w, [(6, 3), (3, 4), (4,)], [0, 1, 1], 1),
    "two layers": (lambda x, w, b, v, c: jitgrad.relu(jitgrad.relu(x @ w + b) @ v + c),
                   [(6, 3), (3, 4), (4,), (4, 2), (2,)], [0, 1, 1, 1, 1], 2),
    "x needs grad": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (4,)], [1, 1, 1], 1),
    "W needs none": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (4,)], [1, 0, 1], 1),
    "b (1, n)": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (1, 4)], [0, 1, 1], 1),
    "b () for n 1": (lambda x, w, b: x @ w + b, [(6, 3), (3, 1), ()], [0, 1, 1], 1),
    "b is W": (lambda x, w: x @ w + w, [(6, 1), (1, 4)], [0, 1], 1),
    "b computed before": (lambda x, w, b: x @ w + b * 2, [(6, 3), (3, 4), (4,)], [0, 1, 1], 0),
    "b used elsewhere": (lambda x, w, b: (x @ w + b) - (b * b).sum(), [(6, 3), (3, 4), (4,)],
                         [0, 1, 1], 1),
    "b used in between": (lambda x, w, b: (lambda h, c: (h + b) - c)(x @ w, (b * b).sum()),
                          [(6, 3), (3, 4), (4,)], [0, 1, 1], 0),
    # W's gradient: terms from rows after the ADD, between the MM and the ADD, and the MM (its
    # order would change, moved to the ADD's place)
    "W used in between": (lambda x, w, b: (lambda h, c: (h + b) - c)(x @ w, (w * w).sum()) + (w * 3).sum(),
                          [(6, 3), (3, 4), (4,)], [0, 1, 1], 0),
    "product used twice": (lambda x, w, b: (lambda h: (h + b) - h)(x @ w), [(6, 3), (3, 4), (4,)],
                           [0, 1, 1], 0),
    "b (m, n)": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (6, 4)], [0, 1, 1], 0),
    "b (1,) for n 4": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (1,)], [0, 1, 1], 0),
    "b (m, 1)": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (6, 1)], [0, 1, 1], 0),
    "b needs none": (lambda x, w, b: x @ w + b, [(6, 3), (3, 4), (4,)], [0, 1, 0], 0),
    "addmm": (lambda x, w, b: jitgrad.addmm(b, x, w), [(6, 3), (3, 4), (4,)], [0, 1, 1], 0),
    "linear": (lambda x, w, b: jitgrad.nn.functional.linear(x, w.t(), b), [(6, 3), (3, 4), (4,)],
               [0, 1, 1], 0),
    "empty batch": (lambda x, w, b: x @ w + b, [(0, 3), (3, 4), (4,)], [0, 1, 1], 0),
    # addmm's forward kernel adds the bias row in place: nothing to add to an empty output
    "addmm, empty batch": (lambda x, w, b: jitgrad.addmm(b, x, w), [(0, 3), (3, 4), (4,)], [0, 1, 1], 0),
    "linear, empty batch": (lambda x, w, b: jitgrad.nn.functional.linear(x, w.t(), b),
                            [(0, 3), (3, 4), (4,)], [0, 1, 1], 0),
}


def _updates_folded(cf):
    """How many scaled_update instructions (a manual update folded, see
    program._fold_scaled_updates) cf's program runs."""
    from jitgrad.compiler.program import scaled_update
    from jitgrad.engine import codegen
    program = next(v for v in cf.traces.values() if not isinstance(v, str)).program
    op = np.flatnonzero(program.faddrs == codegen.kernel_address(scaled_update, program.dtype))
    return int(np.isin(program.prog[:, 0], op).sum())


def _u_twice(p, lr):
    u = lr * p.grad
    p -= u
    p -= u


# name: (the update of one parameter p (shape (3, 4)) by lr, how many of the step's two updates
# the program folds)
MANUAL_UPDATES = {
    "p -= lr * p.grad": (lambda p, lr: p.sub_(lr * p.grad), 2),
    "p -= p.grad * lr": (lambda p, lr: p.sub_(p.grad * lr), 2),
    "p += -lr * p.grad": (lambda p, lr: p.add_(-lr * p.grad), 2),
    "p.sub_(p.grad, alpha=lr)": (lambda p, lr: p.sub_(p.grad, alpha=lr), 2),
    "p.add_(p.grad, alpha=-lr)": (lambda p, lr: p.add_(p.grad, alpha=-lr), 2),
    "p -= lr * p": (lambda p, lr: p.sub_(lr * p), 2),
    "the scaled gradient used twice": (_u_twice, 0),
    "scaled by a tensor": (lambda p, lr: p.sub_(jitgrad.tensor(lr, dtype=p.dtype) * p.grad), 0),
    "a broadcast row": (lambda p, lr: p.sub_(lr * p.grad[0]), 0),
    "p *= lr": (lambda p, lr: p.mul_(1 - lr), 0),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(MANUAL_UPDATES))
def test_manual_updates_fold_into_one_pass_exactly(name, dtype):
    """A compiled step runs `p -= lr * p.grad` (and its spellings) as one pass over p where the
    scaled gradient is read nowhere else, and not elsewhere; either way the loss, every .grad and
    the updated parameters are eager's bit for bit, call after call."""
    update, folds = MANUAL_UPDATES[name]
    rng = np.random.default_rng(3)
    init = [rng.standard_normal((3, 4)).astype(dtype) for _ in range(2)]

    def make():
        ps = [jitgrad.tensor(a.copy(), requires_grad=True) for a in init]

        def step(x, lr):
            for p in ps:
                p.grad = None
            loss = jitgrad.relu(x @ ps[0].t() @ ps[1]).pow(2).sum()
            loss.backward()
            with jitgrad.no_grad():
                for p in ps:
                    update(p, lr)
            return loss
        return ps, step
    (pe, eager), (pc, traced) = make(), make()
    compiled = jitgrad.compile(traced, fullgraph=True)
    for k in range(5):
        x = jitgrad.tensor(rng.standard_normal((5, 4)).astype(dtype))
        lr = 0.01 if k < 3 else 0.02    # (a call with another float traces again)
        np.testing.assert_array_equal(eager(x, lr).detach().numpy(), compiled(x, lr).detach().numpy())
        for a, b in zip(pe, pc):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert _updates_folded(compiled) == folds


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", ["overlapping views", "the scaled value returned"])
def test_manual_update_not_folded_where_operands_overlap_or_it_is_returned(case, dtype):
    """x -= c * y with x and y overlapping views of one array from outside: the two ops read all
    of y before writing x; one pass would read elements it already wrote. And a scaled value the
    function returns must still be computed."""
    base_e, base_c = (jitgrad.tensor(np.linspace(1, 2, 9).astype(dtype)) for _ in range(2))
    returned = case == "the scaled value returned"

    def make(base):
        x, y = (base[2:], base[:-2]) if not returned else (base, base)

        def step(c):
            with jitgrad.no_grad():
                u = c * y
                x.sub_(u)
            return u if returned else None
        return step
    eager, compiled = make(base_e), jitgrad.compile(make(base_c), fullgraph=True)
    for c in (0.5, 0.5, 0.5, 2.0, 2.0):
        out_e, out_c = eager(c), compiled(c)
        if returned:
            np.testing.assert_array_equal(out_e.numpy(), out_c.numpy())
        np.testing.assert_array_equal(base_e.numpy(), base_c.numpy())
    assert _updates_folded(compiled) == 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", list(BIAS_ADDS))
def test_bias_adds_fold_into_one_row_exactly(name, dtype):
    """A compiled step folds x @ W + b (MM, EXPAND and ADD rows) into one MM_BIAS row where the
    gradients keep their terms and order, and not elsewhere; either way the loss, every .grad and
    the updated parameters are eager's bit for bit, call after call."""
    body, shapes, grads, folds = BIAS_ADDS[name]
    rng = np.random.default_rng(7)
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]

    def make():
        ts = [jitgrad.tensor(a.copy(), requires_grad=bool(r)) for a, r in zip(init, grads)]
        params = [t for t in ts if t.requires_grad]

        def step(x):
            for p in params:
                p.grad = None
            out = body(x, *ts[1:]) if not grads[0] else body(ts[0], *ts[1:])
            loss = (jitgrad.relu(out) * out).sum() + (out * 0.5).mean()
            loss.backward()
            with jitgrad.no_grad():
                for p in params:
                    p -= 0.1 * p.grad
            return loss
        return ts, step
    (te, eager), (tc, traced) = make(), make()
    compiled = jitgrad.compile(traced, fullgraph=True)
    for k in range(4):
        x = jitgrad.tensor(rng.standard_normal(shapes[0]).astype(dtype))
        np.testing.assert_array_equal(eager(x).detach().numpy(), compiled(x).detach().numpy())
        for a, b in zip(te, tc):
            np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
            if a.requires_grad:
                np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    assert _folds(compiled) == folds


def test_a_trace_that_fails_to_start_leaves_the_tape_unlocked_and_usable(monkeypatch):
    from jitgrad.compiler import trace as trace_module
    from jitgrad.engine import hook
    from jitgrad.engine.tape import TAPE

    def broken():
        raise MemoryError("no room for the arena lengths")
    model = mlp(0)
    X, y = data()

    @jitgrad.compile
    def cf():
        with jitgrad.no_grad():
            return model(X).sum()
    pinned = TAPE.pinned
    monkeypatch.setattr(trace_module, "_arena_lengths", broken)
    with pytest.raises(MemoryError):
        cf()
    monkeypatch.undo()
    assert TAPE.lock.acquire(blocking=False)    # given back (a leaked lock would hang all else)
    TAPE.lock.release()
    assert TAPE.pinned == pinned and hook.tracer is None
    loss = (model(X) - y).pow(2).mean()         # the engine records and differentiates as before
    loss.backward()
    assert model[0].weight.grad is not None
    expected = model(X).sum().item()
    assert cf().item() == expected and cf().item() == expected     # traced, then replayed
    assert next(iter(cf.traces.values())).__class__.__name__ == "_Compiled"


def test_optimizer_zero_grad_folds_into_the_replay_while_its_parameters_are_the_traced():
    """optimizer.zero_grad() traced as `p.grad = None` of each parameter: a replay is one call
    (the optimizer's step inside it, or after it when not ready: momentum turned on between
    calls), a .grad held across calls keeps its values, and a parameter group added between
    calls is a guard miss (the new group's .grad is reset too, as eagerly)."""
    def make():
        m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        extra = nn.Linear(3, 1).double()
        opt = jitgrad.optim.SGD(m.parameters(), lr=0.1)
        held = []

        def step(x):
            opt.zero_grad()
            loss = (m(x) + extra(x)).pow(2).mean()
            loss.backward()
            opt.step()
            return loss

        def observe():
            if len(held) == 2:
                opt.param_groups[0]["momentum"] = 0.9
            if len(held) == 4:
                opt.add_param_group({"params": extra.parameters()})
            held.append(m[0].weight.grad)       # (a .grad held across calls)
            return [p.detach().numpy().copy() for p in [*m.parameters(), *extra.parameters()]] + \
                [g.numpy().copy() for g in held] + _grads(*extra.parameters())
        return step, observe
    xs = [jitgrad.randn(5, 3, dtype=jitgrad.float64) for _ in range(8)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    programs = [v.program for v in fn.traces.values() if not isinstance(v, str)]
    assert programs and all(p.only is not None for p in programs)


@pytest.mark.parametrize("change", ["replace a layer", "append a layer", "replace in a list",
                                    "forward hook", "remove a hook", "global hook", "parameter"])
def test_a_module_changed_between_calls_is_not_the_traced(change):
    """What a step's modules are made of is guarded: a submodule replaced or added (also in a
    ModuleList the step reads), a forward hook added or removed (also a global one), a
    parameter replaced; the calls after the change give eager's results."""
    def make():
        seq = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1)).double()
        heads = nn.ModuleList([nn.Linear(3, 1).double(), nn.Linear(3, 1).double()])
        handles, calls = [], [0]

        def step(x):
            seq.zero_grad()
            heads.zero_grad()
            loss = seq(x).pow(2).mean() + heads[1](x).pow(2).mean()
            loss.backward()
            return loss.detach()

        def observe():
            calls[0] += 1
            if calls[0] == 3:
                if change == "replace a layer":
                    seq[0] = nn.Linear(3, 4).double()
                elif change == "append a layer":
                    seq.append(nn.Tanh())
                elif change == "replace in a list":
                    heads[1] = nn.Linear(3, 1).double()
                elif change in ("forward hook", "remove a hook"):
                    handles.append(seq[2].register_forward_hook(lambda m, i, o: o * 2))
                elif change == "global hook":
                    handles.append(nn.modules.module.register_module_forward_hook(
                        lambda m, i, o: o * 2 if isinstance(m, nn.Tanh) else None))
                else:
                    seq[2].weight = nn.Parameter(jitgrad.ones(1, 4, dtype=jitgrad.float64))
            if calls[0] == 5 and change in ("remove a hook", "global hook"):
                handles.pop().remove()
            return _grads(*seq.parameters(), *heads.parameters())
        return step, observe
    xs = [jitgrad.randn(5, 3, dtype=jitgrad.float64) for _ in range(7)]
    _as_eagerly(make, [lambda x=x: (x,) for x in xs])


def test_a_namedtuple_result_is_rebuilt_as_one():
    Result = collections.namedtuple("Result", "loss out")

    def make():
        w = jitgrad.tensor(np.arange(6.0).reshape(3, 2) / 7, requires_grad=True)

        def step(x):
            w.grad = None
            out = x @ w
            loss = out.pow(2).sum()
            loss.backward()
            return Result(loss.detach(), out.detach())
        return step, lambda: _grads(w)
    xs = [jitgrad.randn(4, 3, dtype=jitgrad.float64) for _ in range(3)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert type(fn(xs[0])) is Result


@pytest.mark.parametrize("update", ["manual", "sgd"])
def test_two_backwards_then_an_update_reads_their_sum(update):
    """Gradient accumulation over two micro-batches in one step: the update after the second
    backward reads the sum (a replay read the first backward's gradient alone)."""
    def make():
        w = jitgrad.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=jitgrad.float64, requires_grad=True)
        opt = jitgrad.optim.SGD([w], lr=0.1) if update == "sgd" else None

        def step(X):
            w.grad = None
            (X[:1] @ w).sum().backward()
            (X[1:] @ w).pow(2).sum().backward()
            if opt is not None:
                opt.step()
            else:
                with jitgrad.no_grad():
                    w.sub_(w.grad, alpha=0.1)
        return step, lambda: [w.detach().numpy().copy()] + _grads(w)
    xs = [jitgrad.randn(2, 2, dtype=jitgrad.float64) for _ in range(4)]
    _as_eagerly(make, [lambda x=x: (x,) for x in xs])


def test_a_grad_the_step_reads_before_setting_it_is_guarded():
    """A frozen parameter's .grad from before the step, read by the step's Python (`if p.grad
    is not None`), then set to None outside between calls: eager skips its update from then
    on; a replay used to go on subtracting the old gradient."""
    def make():
        w1 = jitgrad.tensor([1.0, 2.0], dtype=jitgrad.float64, requires_grad=True)
        w2 = jitgrad.tensor([3.0, 4.0], dtype=jitgrad.float64, requires_grad=True)
        (w1 * w2).sum().backward()
        w2.requires_grad_(False)
        calls = [0]

        def step(x):
            w1.grad = None
            (w1 * w2 * x).sum().backward()
            with jitgrad.no_grad():
                for p in (w1, w2):
                    if p.grad is not None:
                        p -= 0.5 * p.grad

        def observe():
            calls[0] += 1
            if calls[0] == 2:
                w2.grad = None
            if calls[0] == 4:
                w2.grad = jitgrad.ones(2, dtype=jitgrad.float64)
            return [w1.detach().numpy().copy(), w2.numpy().copy()]
        return step, observe
    x = jitgrad.tensor([1.0, 1.0], dtype=jitgrad.float64)
    fn = _as_eagerly(make, [lambda: (x,)] * 6)
    assert any(not isinstance(v, str) for v in fn.traces.values())


@pytest.mark.parametrize("update", ["sub_", "isub", "sgd"])
def test_a_replayed_update_moves_versions_as_eager(update):
    """Each in-place write of a replay moves the parameter's version as eager's did, so a graph
    that saved the parameter before the call raises at its backward, as eagerly (a replayed
    manual update used to leave the version, and that backward read the new values)."""
    def make():
        w = jitgrad.tensor([1.0, 2.0], dtype=jitgrad.float64, requires_grad=True)
        opt = jitgrad.optim.SGD([w], lr=0.1) if update == "sgd" else None
        pending = []

        def step(x):
            w.grad = None
            (w * x).sum().backward()
            if opt is not None:
                opt.step()
                return
            with jitgrad.no_grad():
                if update == "sub_":
                    w.sub_(w.grad, alpha=0.1)
                else:
                    p = w
                    p -= 0.1 * p.grad
                    p -= 0.1 * p.grad

        def observe():
            errors = []
            for p in pending:
                try:
                    p.backward()
                except RuntimeError as e:
                    errors.append(str(e))
            pending[:] = [(w * w).sum()]
            return [w._version, w.detach().numpy().copy(), len(errors)] + errors
        return step, observe
    x = jitgrad.tensor([1.0, 1.0], dtype=jitgrad.float64)
    fn = _as_eagerly(make, [lambda: (x,)] * 5)
    assert any(not isinstance(v, str) for v in fn.traces.values())


def test_a_tensor_returned_twice_is_one_object_after_a_replay():
    w = jitgrad.tensor([1.0, 2.0], requires_grad=True)

    @jitgrad.compile
    def step(x):
        w.grad = None
        loss = (w * x).sum()
        loss.backward()
        d, a = loss.detach(), w.detach()
        return d, [d, {"d": d, "a": a}], a

    x = jitgrad.tensor([1.0, 1.0])
    for _ in range(3):
        d, (d2, inner), a = step(x)
        assert d is d2 is inner["d"] and a is inner["a"] and d is not a
    assert any(not isinstance(v, str) for v in step.traces.values())


def test_a_python_number_in_the_result_runs_eagerly():
    """A replay cannot recompute a Python number the step returns (the scheduler's learning
    rate here): the step runs eagerly, with a warning, and returns eager's values."""
    w = jitgrad.tensor([1.0, 2.0], requires_grad=True)
    opt = jitgrad.optim.SGD([w], lr=0.1)
    sched = jitgrad.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def step(x):
        opt.zero_grad()
        (w * x).sum().backward()
        opt.step()
        sched.step()
        return sched.get_last_lr()[0]

    fn = jitgrad.compile(step)
    x = jitgrad.tensor([1.0, 1.0])
    with pytest.warns(UserWarning, match="returns a Python float"):
        lrs = [fn(x) for _ in range(4)]
    assert lrs == [0.05, 0.025, 0.0125, 0.00625]
    with pytest.raises(RuntimeError, match="returns a Python float"):
        jitgrad.compile(step, fullgraph=True)(x)


@pytest.mark.parametrize("dtype", [jitgrad.float32, jitgrad.float64])
@pytest.mark.parametrize("dims, shape", [((0, 2, 3), (5, 4, 6, 6)), ((0, 2, 3), (5, 1, 6, 6)),
                                         ((0, 2), (5, 4, 6, 1)), ((0, 2), (3, 5, 4, 3)),
                                         ((1, 3), (2, 3, 4, 5, 6)), ((0, 2), (6, 3, 200))])
def test_a_reduction_over_scattered_dims_replays_numpys_rounding(dims, shape, dtype):
    """sum, mean and var over dims that are not adjacent (BatchNorm2d's (0, 2, 3)) add in
    numpy's order: the trailing reduced dims' blocks pairwise, then the blocks in C order (size-1
    dims merge either way); a replay summed element by element and differed in the last bits."""
    rng = np.random.default_rng(2)
    w = jitgrad.tensor(rng.standard_normal(shape), dtype=dtype, requires_grad=True)

    def step(x):
        w.grad = None
        y = w * x
        r = y.sum(dims) + y.mean(dims) * 3 + y.var(dims, correction=0)
        (r * r).sum().backward()
        return r.detach()
    fn = jitgrad.compile(step)
    for _ in range(3):
        x = jitgrad.tensor(rng.standard_normal(shape), dtype=dtype)
        want, want_grad = step(x).numpy(), w.grad.numpy().copy()
        got = fn(x).numpy()
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(w.grad.numpy(), want_grad)
    assert any(not isinstance(v, str) for v in fn.traces.values())


@pytest.mark.parametrize("dtype", [jitgrad.float32, jitgrad.float64])
@pytest.mark.parametrize("kind", ["conv-bn2d", "mlp-bn1d", "momentum None", "no running stats"])
def test_batchnorm_training_replays_its_running_statistics(kind, dtype):
    """A step through BatchNorm in training replays: the running statistics and the batch count
    move after each call as eagerly (bit for bit, in float64 as PyTorch's kernel), with their
    versions; momentum=None (a cumulative average read from the count) runs eagerly; a switch to
    eval() between calls is a guard miss."""
    def make():
        jitgrad.manual_seed(0)
        if kind == "conv-bn2d":
            m = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(3 * 4 * 4, 1))
        else:
            bn = nn.BatchNorm1d(5, momentum=None if kind == "momentum None" else 0.1,
                                track_running_stats=kind != "no running stats")
            m = nn.Sequential(nn.Linear(4, 5), bn, nn.ReLU(), nn.Linear(5, 1))   # (not tanh:
        m = m.to(dtype)                                                    # libm's last bits)
        opt = jitgrad.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
        calls = [0]

        def step(x, y):
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            opt.step()
            return loss.detach()

        def observe():
            calls[0] += 1
            m.train(calls[0] not in (3, 4))
            bn = m[1]
            counts = [] if bn.num_batches_tracked is None else \
                [bn.num_batches_tracked.item(), bn.num_batches_tracked._version, bn.running_mean._version]
            return [v.detach().numpy().copy() for v in m.state_dict().values()] + counts
        return step, observe
    rng = np.random.default_rng(3)
    shape = (6, 1, 6, 6) if kind == "conv-bn2d" else (6, 4)
    data = [(jitgrad.tensor(rng.standard_normal(shape), dtype=dtype),
             jitgrad.tensor(rng.standard_normal((6, 1)), dtype=dtype)) for _ in range(7)]
    fn = _as_eagerly(make, [lambda d=d: d for d in data])
    replayed = [v for v in fn.traces.values() if not isinstance(v, str)]
    assert bool(replayed) == (kind != "momentum None")


def test_a_grad_reached_between_calls_is_never_written_by_the_next():
    """Replays skip the .grads' reference checks while nothing reached a .grad since (the
    grad epoch): reading one (and holding it), returning it, a backward of the user's, zero_grad
    or an in-place write anywhere in between each make the next call check again."""
    w, b, xs = _layer_and_inputs(7, 12)

    @jitgrad.compile
    def step(x):
        w.grad = None
        b.grad = None
        ((x @ w + b) ** 2).sum().backward()

    held = []
    for k, x in enumerate(xs):
        step(x)
        if k % 4 == 2:
            (w * 2).sum().backward()                            # the user's backward into it
        if k % 3 == 1:
            held.append((w.grad, w.grad.numpy().copy()))       # read and held
        if k == 6:
            jitgrad.optim.SGD([w, b], lr=0.1).zero_grad()
    for g, values in held:
        np.testing.assert_array_equal(g.numpy(), values)
    assert len({id(g) for g, _ in held}) == len(held)
    x = xs[0]
    step(x)
    want = (2 * x.numpy().T @ (x.numpy() @ w.detach().numpy() + b.detach().numpy()))
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-12)


def test_a_replay_stopped_by_a_forward_kernel_in_its_steady_state_raises_as_eager():
    # the steady state's call (no .grad checks) stopped before its backward: eager's error, each
    # .grad None as `w.grad = None` left it, the parameter unchanged; then replays go on
    s = jitgrad.tensor([0.5, 0.5], dtype=jitgrad.float64)
    t = jitgrad.tensor([1.0, 0.0], dtype=jitgrad.float64)
    w = jitgrad.tensor([1.0, -1.0], dtype=jitgrad.float64, requires_grad=True)

    def step():
        w.grad = None
        loss = nn.functional.binary_cross_entropy(jitgrad.sigmoid(w) * s, t)
        loss.backward()
        with jitgrad.no_grad():
            w.sub_(0.1 * w.grad)
        return loss
    eager_w = w.detach().clone().requires_grad_()
    compiled = jitgrad.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            compiled()
    before = w.detach().clone()
    s.numpy()[:] = 3.0              # (through numpy: nothing jitgrad sees moves the grad epoch)
    with pytest.raises(RuntimeError, match="all elements of input should be between 0 and 1"):
        compiled()
    assert w.grad is None and jitgrad.equal(w, before)
    with jitgrad.no_grad():
        s.fill_(0.5)
    loss = compiled()
    w, s_w = eager_w, w             # the same five steps eagerly (the failed one changed nothing)
    for _ in range(5):
        eager_loss = step()
    assert loss.item() == eager_loss.item() and jitgrad.equal(s_w, w) and jitgrad.equal(s_w.grad, w.grad)


def test_an_optimizer_lr_tensor_changed_in_place_between_replays_takes_effect():
    # the fused step rewrites its hyperparameters only when they changed; a tensor lr changed
    # in place is the same object in both tuples, so it is written every call
    def run(compiled):
        jitgrad.manual_seed(0)
        m = nn.Linear(3, 1).double()
        lr = jitgrad.tensor(0.1, dtype=jitgrad.float64)
        opt = jitgrad.optim.SGD(m.parameters(), lr=lr)
        X = jitgrad.ones(4, 3, dtype=jitgrad.float64)

        def step():
            opt.zero_grad()
            loss = m(X).pow(2).mean()
            loss.backward()
            opt.step()
            return loss
        f = jitgrad.compile(step) if compiled else step
        losses = []
        for k in range(6):
            losses.append(f().item())
            if k == 3:
                with jitgrad.no_grad():
                    lr.mul_(0.5)
        return losses, m.weight.detach().clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (eager, w_eager), (compiled, w_compiled) = run(False), run(True)
    assert eager == compiled and jitgrad.equal(w_eager, w_compiled)


def _twin_models(seed=0):
    """Two identical MLPs with SGD: one for the eager step, one for the compiled."""
    out = []
    for _ in range(2):
        m = mlp(seed)
        out.append((m, jitgrad.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)))
    return out


def _assert_same_models(m1, m2):
    for (n1, p1), (n2, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        assert n1 == n2 and jitgrad.equal(p1, p2)
        assert (p1.grad is None) == (p2.grad is None)
        if p1.grad is not None:
            assert jitgrad.equal(p1.grad, p2.grad)


def _eager_against_compiled(body, calls, between=None, twins=None):
    """body(m, opt, X, y) the step; runs it eagerly on one of two identical models and compiled
    on the other, calls times (between(k, twins, the compiled function) before call k), with no
    eager fallback:
    every result (a tensor or a tuple of tensors and lists of them), parameter and .grad the
    same. Returns the compiled function."""
    X, y = data()
    (m1, o1), (m2, o2) = twins = twins or _twin_models()
    eager = lambda X, y: body(m1, o1, X, y)                         # noqa: E731
    compiled = jitgrad.compile(lambda X, y: body(m2, o2, X, y))

    def flat(r):
        return [x for v in (r if isinstance(r, tuple) else (r,))
                for x in (v if isinstance(v, list) else [v])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for k in range(calls):
            if between is not None:
                between(k, twins, compiled)
            for a, b in zip(flat(eager(X, y)), flat(compiled(X, y)), strict=True):
                assert a.dtype == b.dtype and jitgrad.equal(a, b)
            _assert_same_models(m1, m2)
    return compiled


def _the_program(compiled):
    return next(v for v in compiled.traces.values() if not isinstance(v, str)).program


def test_module_zero_grad_in_the_step_folds_into_its_call():
    # model.zero_grad() at the step's start, as optimizer.zero_grad(): `p.grad = None` of each
    # parameter, folded into the backward's call (no host call), the module guarded: a layer
    # replaced between calls traces again, as eagerly
    def body(m, opt, X, y):
        m.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    def between(k, twins, compiled):
        if k == 4:
            program = _the_program(compiled)
            assert program.only is not None and program.only.fresh is not None
            for m, _ in twins:
                jitgrad.manual_seed(3)
                m[2] = nn.Linear(8, 8).double()
    _eager_against_compiled(body, 6, between)


@pytest.mark.parametrize("reads", [False, True], ids=["unread", "read before zero_grad"])
def test_grads_dropped_by_a_trailing_zero_grad(reads):
    # `opt.step(); opt.zero_grad()` at the end: the replay need not hand out the .grads the
    # zero_grad drops (unless the step reads them first); where the optimizer step cannot run
    # in the call (its momentum turned on: new state), its host call reads them, so they are
    def body(m, opt, X, y):
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        norms = [p.grad.norm() for p in m.parameters()] if reads else []
        opt.step()
        opt.zero_grad()
        assert all(p.grad is None for p in m.parameters())
        return loss, norms

    def between(k, twins, compiled):
        for _, opt in twins:
            opt.param_groups[0]["momentum"] = 0.9 if k >= 4 else 0.0
    twins = _twin_models()
    compiled = _eager_against_compiled(body, 7, between, twins)
    run = next(s for s in _the_program(compiled).segments if isinstance(s, jitgrad.compiler.program._Run))
    assert run.drops is not reads
    (_, o1), (_, o2) = twins
    for a, b in zip(o1.state_dict()["state"].values(), o2.state_dict()["state"].values()):
        assert jitgrad.equal(a["momentum_buffer"], b["momentum_buffer"])


def test_a_step_with_frozen_parameters_folds_and_makes_state_when_they_thaw():
    # zero_grad() sets the frozen parameters' .grad to None too: folded into the call all the
    # same; the optimizer makes a parameter's state the first time it steps (not looking again
    # at every step for the frozen ones), eagerly and in a replay, also once it is unfrozen
    def body(m, opt, X, y):
        opt.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    def between(k, twins, compiled):
        (_, o1), (_, o2) = twins
        if k == 4:
            program = _the_program(compiled)
            assert program.only is not None and program.only.also_none
        if k == 0 or k == 4:
            for m, _ in twins:
                m[0].weight.requires_grad_(k == 4)
        s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
        assert s1.keys() == s2.keys() and (0 in s2) is (k > 4)
        for i in s1:
            assert jitgrad.equal(s1[i]["momentum_buffer"], s2[i]["momentum_buffer"])
    _eager_against_compiled(body, 7, between)


def test_a_scheduler_step_after_the_optimizer_step_stays_on_the_one_call_path():
    # the call, then the scheduler's host call: no loop over segments; the lr it sets is what
    # the next call's fused step reads
    twins = _twin_models()
    scheds = {id(opt): jitgrad.optim.lr_scheduler.StepLR(opt, 2, 0.5) for _, opt in twins}

    def body(m, opt, X, y):
        opt.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        opt.step()
        scheds[id(opt)].step()
        return loss

    def between(k, twins, compiled):
        (_, o1), (_, o2) = twins
        assert o1.param_groups[0]["lr"] == o2.param_groups[0]["lr"] and \
            scheds[id(o1)].state_dict() == scheds[id(o2)].state_dict()
    compiled = _eager_against_compiled(body, 7, between, twins)
    program = _the_program(compiled)
    assert program.only is not None and len(program.hosts_after) == 1


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_inside_the_step_replays(norm_type):
    # the total norm is ops (each .grad's norm, then theirs), so the step replays; the returned
    # norm and the clipped .grads the optimizer reads are eager's
    def body(m, opt, X, y):
        opt.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        total = nn.utils.clip_grad_norm_(m.parameters(), 0.05, norm_type)
        opt.step()
        return loss, total
    _eager_against_compiled(body, 4)


def test_clip_grad_value_inside_the_step_replays():
    # clamp_ of each .grad under no_grad: written into the .grad's slot after the backward
    def body(m, opt, X, y):
        opt.zero_grad()
        loss = ((m(X) - y) ** 2).mean()
        loss.backward()
        nn.utils.clip_grad_value_(m.parameters(), 0.01)
        opt.step()
        return loss
    _eager_against_compiled(body, 4)


def test_weight_clipping_by_clamp_in_place_replays_with_versions():
    # WGAN's critic: clamp_ of each parameter under no_grad after the step, written into the
    # parameter's own storage; versions move as eagerly
    def body(m, opt, X, y):
        opt.zero_grad()
        loss = -m(X).mean()
        loss.backward()
        opt.step()
        with jitgrad.no_grad():
            for p in m.parameters():
                p.clamp_(-0.05, 0.05)
        return loss

    def between(k, twins, compiled):
        (m1, _), (m2, _) = twins
        assert [p._version for p in m1.parameters()] == [p._version for p in m2.parameters()]
    _eager_against_compiled(body, 5, between)


def test_clip_grad_norm_with_error_if_nonfinite_runs_eagerly():
    (m, opt), _ = _twin_models()
    X, y = data()

    def step(X, y):
        opt.zero_grad()
        ((m(X) - y) ** 2).mean().backward()
        nn.utils.clip_grad_norm_(m.parameters(), 0.05, error_if_nonfinite=True)
        opt.step()
    compiled = jitgrad.compile(step)
    with pytest.warns(UserWarning, match="reads a tensor's value in Python"):
        compiled(X, y)


@pytest.mark.parametrize("pool", [lambda h: nn.functional.max_pool1d(h, 2),
                                  lambda h: nn.functional.adaptive_max_pool2d(h.unsqueeze(1), 2)])
def test_a_max_pools_gradient_recorded_as_ops_runs_eagerly(pool):
    """A gradient penalty through a max pool: the create_graph backward records the pool's VJP
    as a scatter at the traced call's maxima, which a replay would keep while its inputs'
    maxima move: it runs eagerly (a replay's gradients differed from the second call on)."""
    def make():
        w = jitgrad.randn(3, 4, dtype=jitgrad.float64, requires_grad=True)

        def step(x):
            loss = pool(jitgrad.tanh(x @ w)).sum()
            g, = jitgrad.autograd.grad(loss, [w], create_graph=True)
            w.grad = None
            (loss + (g * g).sum()).backward()
            return loss.detach()
        return step, lambda: [w.grad.numpy().copy()]
    rng = np.random.default_rng(0)
    xs = [jitgrad.tensor(rng.standard_normal((5, 3))) for _ in range(3)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert all(isinstance(v, str) and "max pool" in v for v in fn.traces.values())


def test_a_schedulers_step_on_the_loss_runs_eagerly():
    """ReduceLROnPlateau.step(loss) inside the step: a host call replays with the traced call's
    arguments, so a replay read the first loss at every call (its best never improved and the
    lr halved at each call): a tensor argument to a host call runs eagerly."""
    def make():
        w = jitgrad.randn(3, 1, dtype=jitgrad.float64, requires_grad=True)
        opt = jitgrad.optim.SGD([w], lr=0.05)
        sched = jitgrad.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)

        def step(x):
            opt.zero_grad()
            loss = ((x @ w) ** 2).mean()
            loss.backward()
            opt.step()
            sched.step(loss.detach())
            return loss.detach()
        return step, lambda: [w.detach().numpy().copy(), opt.param_groups[0]["lr"], sched.best]
    rng = np.random.default_rng(0)
    xs = [jitgrad.tensor(rng.standard_normal((5, 3))) for _ in range(4)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert all(isinstance(v, str) for v in fn.traces.values())


def test_a_mean_over_an_average_pools_output_replays_bit_for_bit():
    """avg_pool2d gathered its windows into a planes-innermost layout (strides unlike torch's):
    numpy's mean over its 3x3 windows then added in memory order, a replay in C order, and the
    two differed in the last bit (ceil_mode's partial windows, seen by the differential test)."""
    def make():
        w = jitgrad.randn(5, 5, dtype=jitgrad.float64, requires_grad=True)

        def step(x):
            w.grad = None
            h = nn.functional.avg_pool2d(x * w, 2, ceil_mode=True).mean((2, 3))
            (h * h).sum().backward()
            return h.detach()
        return step, lambda: [w.grad.numpy().copy()]
    rng = np.random.default_rng(0)
    xs = [jitgrad.tensor(rng.standard_normal((6, 3, 5, 5))) for _ in range(4)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert not any(isinstance(v, str) for v in fn.traces.values())
    assert nn.functional.avg_pool2d(xs[0], 2, ceil_mode=True).stride() == (27, 9, 3, 1)


@pytest.mark.parametrize("reduce", [
    lambda h: h.sum(), lambda h: h.mean(1), lambda h: h.std(1), lambda h: h.norm(dim=1),
    lambda h: h.logsumexp(1), lambda h: nn.functional.mse_loss(h, h * 0.5),
    lambda h: nn.functional.layer_norm(h, (20,))])
def test_a_reduction_of_a_transposed_view_replays_bit_for_bit(reduce):
    """numpy sums a strided array in memory order, a replay (its values in C order) in C order:
    a reduction's eager sum over a transposed view differed in the last bits (found with the
    differential test's pooled means)."""
    def make():
        w = jitgrad.ones(1, dtype=jitgrad.float64, requires_grad=True)
        return (lambda x: reduce((x * w).t()).detach()), lambda: []
    rng = np.random.default_rng(0)
    xs = [jitgrad.tensor(rng.standard_normal((20, 30))) for _ in range(3)]
    fn = _as_eagerly(make, [lambda x=x: (x,) for x in xs])
    assert not any(isinstance(v, str) for v in fn.traces.values())


@pytest.mark.parametrize("bound", ["x", 1j])
def test_clamp_in_place_by_a_bound_that_is_no_number_raises_as_eager(bound):
    w = jitgrad.ones(3, requires_grad=True)

    def step(b):
        w.grad = None
        (w * 2).sum().backward()
        with jitgrad.no_grad():
            w.grad.clamp_(-1.0, b)
        return w.grad.clone()
    with pytest.raises((TypeError, ValueError)) as eager:
        step(bound)
    with pytest.raises(eager.type, match=re.escape(str(eager.value))):
        jitgrad.compile(step)(bound)
    from jitgrad.engine.tape import TAPE
    assert TAPE.pinned == 0 and jitgrad.compile(step)(0.5).tolist() == [0.5, 0.5, 0.5]
