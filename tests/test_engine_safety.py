"""Engine reliability (issue 9): IEEE semantics in compiled code, exception-safe backward, shape
changes behind the tape, atomic rows, fork safety, detach_ under compaction, per-dtype storage,
a bounded shape table, and backward's argument checks."""
import os
import sys
import threading

import numpy as np
import pytest

import jitgrad as t
from jitgrad.engine.tape import TAPE

inf, nan = np.inf, np.nan


def _grad_of(fn, data, dtype=None):
    x = t.tensor(data, requires_grad=True, dtype=dtype)
    fn(x).backward()
    return x.grad.numpy()


# ---- 1. IEEE semantics: inf/nan in compiled backward, never an exception -------------------
IEEE_CASES = {      # name: (loss, input, torch's gradient)
    "sqrt_at_0": (lambda m, x: x.sqrt().sum(), [0., 4.], [inf, 0.25]),
    "log_at_0": (lambda m, x: x.log().sum(), [0., 2.], [inf, 0.5]),
    "div_by_0": (lambda m, x: (x / 0).sum(), [1., -1.], [inf, inf]),
    "reciprocal_at_0": (lambda m, x: (1 / x).sum(), [0., 2.], [-inf, -0.25]),
    "pow_half_at_0": (lambda m, x: (x ** 0.5).sum(), [0., 4.], [inf, 0.25]),
    "mean_of_empty": (lambda m, x: x[:0].mean(), [1., 2.], [0., 0.]),
    "masked_mean_of_nothing": (lambda m, x: x[x > 10].mean(), [1., 2., 3.], [0., 0., 0.]),
    "where_sqrt": (lambda m, x: m.where(x > 0, x.sqrt(), 0).sum(), [-1., 0., 4.], [nan, nan, 0.25]),
    "softmax_underflow_log": (lambda m, x: m.nn.functional.softmax(x, 0).log().sum(),
                              [0., 1000., -1000.], [nan, nan, nan]),
}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(IEEE_CASES))
def test_ieee_semantics_in_backward(name):
    fn, data, expected = IEEE_CASES[name]
    got = _grad_of(lambda x: fn(t, x), data)
    np.testing.assert_array_equal(got, np.array(expected))
    # the engine is still fine afterwards
    assert _grad_of(lambda x: (x * 3).sum(), [1., 2.]).tolist() == [3., 3.]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", sorted(IEEE_CASES))
def test_ieee_semantics_match_torch(name):
    torch = pytest.importorskip("torch")
    fn, data, _ = IEEE_CASES[name]
    for dtype in (np.float32, np.float64):
        x = torch.tensor(np.array(data, dtype), requires_grad=True)
        fn(torch, x).backward()
        got = _grad_of(lambda v: fn(t, v), np.array(data, dtype))
        np.testing.assert_array_equal(got, x.grad.numpy())


# ---- 2. a backward that raises leaves the engine as usable as before ------------------------
def _fresh_grads():
    w = t.tensor([1., 2., 3.], requires_grad=True)
    b = t.tensor(0.5, requires_grad=True)
    ((w * w).sum() * b + b).backward()
    return w.grad.tolist(), b.grad.item()


EXPECTED_FRESH = ([1., 2., 3.], 15.)


@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError, MemoryError])
def test_backward_dying_inside_the_loop_leaves_work_buffers_clean(monkeypatch, exc):
    from jitgrad.engine import codegen
    mod = codegen.interpreter()
    real = mod.backward
    w = t.tensor([1., 2., 3.], requires_grad=True)
    b = t.tensor(0.5, requires_grad=True)

    def dies_after_marking(*args):
        real(*args)          # need[] is set for the graph's rows, then the call "dies"
        raise exc("interrupted")

    monkeypatch.setattr(mod, "backward", dies_after_marking)
    with pytest.raises(exc):
        ((w * w).sum() * b + b).backward()
    monkeypatch.setattr(mod, "backward", real)
    # the same leaves in a new graph: stale marks would hide them from the next replay
    ((w * w).sum() * b + b).backward()
    assert (w.grad.tolist(), b.grad.item()) == EXPECTED_FRESH
    assert _fresh_grads() == EXPECTED_FRESH


def test_backward_whose_rule_compilation_fails_leaves_the_engine_usable(monkeypatch):
    from jitgrad.engine import codegen, registry
    w = t.tensor([1., 2., 3.], requires_grad=True)
    ((w * w).sum()).backward()                  # SumBackward0's rule is compiled now
    w.grad = None
    table = codegen.rule_addresses(np.float32)
    code = next(op.code for op in registry.OPS if op.grad_fn == "SumBackward0")
    addr = table[code]

    def fails(dtype, wanted):
        raise RuntimeError("compiler failed")

    monkeypatch.setattr(codegen, "compile_rules", fails)
    table[code] = 0                             # as if it was never compiled
    try:
        with pytest.raises(RuntimeError, match="compiler failed"):
            ((w * w).sum() * 2).backward()
    finally:
        table[code] = addr
    monkeypatch.undo()
    ((w * w).sum() * 2).backward()
    assert w.grad.tolist() == [4., 8., 12.]
    assert _fresh_grads() == EXPECTED_FRESH


def test_failed_backwards_in_a_loop_do_not_leak_and_the_next_one_is_correct():
    w = t.tensor([1., 2., 3.], requires_grad=True)
    y = (w * w).sum()
    y.backward()
    z = w * 2
    w2 = w.detach().requires_grad_()
    zz = (w2 * w2).sum()
    with t.no_grad():
        w2.add_(1)                  # dirties zz's saved value
    sizes = None
    for k in range(300):
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            y.backward()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            zz.backward()
        if k == 10:
            sizes = (TAPE.need.size, TAPE.arena.size, TAPE.ints.size, len(TAPE.outs), TAPE.alen)
    assert (TAPE.need.size, TAPE.arena.size, TAPE.ints.size, len(TAPE.outs), TAPE.alen) == sizes
    w.grad = None
    z.sum().backward()
    assert w.grad.tolist() == [2., 2., 2.]
    assert _fresh_grads() == EXPECTED_FRESH


# ---- 3. .data = with another shape on a recorded tensor -------------------------------------
def test_leaf_data_of_another_shape_gets_a_fresh_leaf_row():
    x = t.randn(3, requires_grad=True)
    y = (x * 2).sum()
    x.data = t.randn(1_000_000)
    (x * 3).sum().backward()        # wrote 1e6 gradients into x's 3-element slot before
    assert x.grad.shape == (1_000_000,) and bool((x.grad == 3).all())
    with pytest.raises(RuntimeError, match=r"invalid gradient at index 0 - got \[3\] but expected "
                                           r"shape compatible with \[1000000\]"):
        y.backward()                # the old graph's gradient has the old shape
    assert bool((x.grad == 3).all())
    assert _fresh_grads() == EXPECTED_FRESH


def test_leaf_rows_survive_compaction_after_a_shape_change():
    x = t.randn(3, requires_grad=True)
    keep = x * 2                    # pins the old leaf row
    x.data = t.randn(5)
    z = x * 3                       # a new leaf row
    TAPE.compact()
    z.sum().backward()
    assert x.grad.tolist() == [3.] * 5
    x.grad = None
    (x * 4).sum().backward()
    assert x.grad.tolist() == [4.] * 5
    del keep


def test_a_grad_of_the_old_shape_is_not_added_to():
    x = t.tensor([1., 2., 3.], requires_grad=True)
    y = t.tensor([1., 1.], requires_grad=True)
    (x * 2).sum().backward()
    x.data = t.ones(5)
    with pytest.raises(RuntimeError, match=r"The size of tensor a \(3\) must match the size of "
                                           r"tensor b \(5\)"):
        ((x * 3).sum() + (y * 4).sum()).backward()
    assert x.grad.tolist() == [2., 2., 2.] and y.grad is None     # nothing half-accumulated
    x.grad = None
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.] * 5


def test_non_leaf_data_of_another_shape_raises_torchs_error():
    x = t.randn(3, requires_grad=True)
    y = x * 2
    y.data = t.randn(5)
    with pytest.raises(RuntimeError, match=r"Function MulBackward0 returned an invalid gradient "
                                           r"at index 0 - got \[5\] but expected shape compatible "
                                           r"with \[3\]"):
        (y + t.ones(2, 5)).sum().backward()
    assert _fresh_grads() == EXPECTED_FRESH


def _grow_embedding_and_train(m, optimizer):
    emb = m.nn.Embedding(4, 3)
    emb.weight.data = m.tensor(np.arange(12.).reshape(4, 3) / 10, dtype=m.float32)
    opt = m.optim.SGD(emb.parameters(), lr=0.1) if optimizer else None
    idx = m.tensor([0, 1, 3])
    losses = []
    for step in range(6):
        if step == 3:
            emb.weight.data = m.cat([emb.weight.data, m.ones(2, 3)])
            idx = m.tensor([0, 4, 5, 5])
        emb.weight.grad = None
        loss = (emb(idx) ** 2).sum()
        loss.backward()
        if opt is not None:
            opt.step()
        else:
            with m.no_grad():
                emb.weight -= 0.1 * emb.weight.grad
        losses.append(loss.item())
        del loss                    # torch reuses the old leaf's node while a graph holds it
    return losses, emb.weight.detach().numpy()


EMBEDDING_LOSSES = [3.57, 2.2848, 1.462272, 9.013107, 4.088389, 2.011769]


@pytest.mark.parametrize("optimizer", [False, True])
def test_growing_an_embedding_and_training_on(optimizer):
    losses, weight = _grow_embedding_and_train(t, optimizer)
    np.testing.assert_allclose(losses, EMBEDDING_LOSSES, rtol=1e-5)
    assert weight.shape == (6, 3)
    torch = sys.modules.get("torch") or pytest.importorskip("torch")
    want_losses, want_weight = _grow_embedding_and_train(torch, optimizer)
    np.testing.assert_allclose(losses, want_losses, rtol=1e-6)
    np.testing.assert_allclose(weight, want_weight, rtol=1e-6)


# ---- 6. detach_ survives compaction ---------------------------------------------------------
def test_detach__is_not_undone_by_compaction():
    x = t.tensor([1., 2.], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.detach_()
    TAPE.compact()
    assert y.grad_fn is None and not y.requires_grad and y.is_leaf
    (x * y).sum().backward()
    assert x.grad.tolist() == [2., 4.] and y.grad is None


# ---- 5. fork while another thread holds the tape lock --------------------------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_holds_the_tape_lock():
    import time
    held, release = threading.Event(), threading.Event()

    def hold():
        with TAPE.lock:
            held.set()
            release.wait(30)

    th = threading.Thread(target=hold)
    th.start()
    held.wait(30)
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # fork with threads running
            pid = os.fork()
        if pid == 0:                # the child: record, backward, exit without pytest's cleanup
            code = 1
            try:
                x = t.tensor([1., 2.], requires_grad=True)
                (x * x).sum().backward()
                code = 0 if x.grad.tolist() == [2., 4.] else 2
            finally:
                os._exit(code)
        deadline = time.monotonic() + 60
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung on the tape lock")
            time.sleep(0.05)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    finally:
        release.set()
        th.join()


# ---- 4. attributes that do not pack into a row; atomic appends -------------------------------
def _tape_consistent():
    from jitgrad.engine.loop import WIDTH
    assert len(TAPE.rows) == WIDTH * len(TAPE.outs)


PACKING_CASES = {   # name: (op, input shape); the input's 1-sized dims keep the tensors tiny
    "transpose_17d": (lambda x: x.transpose(0, 2), (2, 1, 3) + (1,) * 14),
    "mT_17d": (lambda x: x.mT, (1,) * 15 + (2, 3)),
    "permute_16d": (lambda x: x.permute(*range(15, -1, -1)), (2, 3, 1, 2) + (1,) * 12),
    "permute_20d": (lambda x: x.permute(*range(19, -1, -1)), (2, 3) + (1,) * 18),
    "sum_dim_63": (lambda x: x.sum(dim=63), (1,) * 63 + (3,)),
    "sum_dims_0_63_keepdim": (lambda x: x.sum(dim=(0, 63), keepdim=True), (2,) + (1,) * 62 + (3,)),
    "mean_dim_63": (lambda x: x.mean(dim=63), (1,) * 63 + (3,)),
}


@pytest.mark.parametrize("name", sorted(PACKING_CASES))
def test_attributes_that_do_not_pack_into_the_row(name):
    fn, shape = PACKING_CASES[name]
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) + 1
    out_shape = fn(t.tensor(data)).shape
    weights = np.arange(np.prod(out_shape), dtype=np.float64).reshape(out_shape) * 0.5 - 1
    x = t.tensor(data, requires_grad=True)
    (fn(x) * t.tensor(weights)).sum().backward()
    # the gradient of sum(f(x) * w) for a permutation or reduction f, computed with numpy
    xs = t.tensor(data)
    expect = np.zeros(data.size)
    for j in range(data.size):
        onehot = np.zeros(data.size)
        onehot[j] = 1
        expect[j] = (fn(t.tensor(onehot.reshape(shape))).numpy() * weights).sum()
    np.testing.assert_allclose(x.grad.numpy().reshape(-1), expect)
    assert fn(xs).shape == out_shape
    _tape_consistent()
    assert _fresh_grads() == EXPECTED_FRESH


def test_batched_matmul_with_a_batch_that_does_not_pack():
    x = t.ones(2**31, 0, 1, requires_grad=True)
    y = t.ones(2**31, 1, 0, requires_grad=True)
    z = x @ y
    assert z.shape == (2**31, 0, 0)
    z.sum().backward()
    assert x.grad.shape == x.shape and y.grad.shape == y.shape
    _tape_consistent()
    assert _fresh_grads() == EXPECTED_FRESH


def test_a_row_that_does_not_fit_is_not_appended_at_all():
    from jitgrad.engine.loop import LEAF
    n = len(TAPE.outs)
    with pytest.raises(OverflowError, match="does not fit"):
        TAPE.append(LEAF, -1, -1, -1, (3,), 0, 1 << 63, 0, None)
    assert len(TAPE.outs) == n
    _tape_consistent()
    assert _fresh_grads() == EXPECTED_FRESH


# ---- 14. the shape table does not grow with every shape ever recorded -----------------------
def test_shape_table_stays_bounded():
    w = t.tensor([1., 2., 3.], requires_grad=True)      # a live leaf: the tape is never reset
    keep = w * 2
    for n in range(1, 20001):
        (t.ones(n, requires_grad=True) * 2).sum()
        if n == 100:
            TAPE.compact()
    assert len(TAPE.shape_ids) <= 2 * 4096 + 8
    # the table holds the entries (ndim, then the sizes) of the shapes it numbers, no more:
    # not 2 per id, as 1-d shapes take, since earlier tests may leave live 3-d tensors
    assert len(TAPE.shapes) <= sum(1 + len(shape) for shape in TAPE.shape_ids) + 8
    keep.sum().backward()
    assert w.grad.tolist() == [2., 2., 2.]
    x = t.ones(7, 3, requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.shape == (7, 3)
    assert _fresh_grads() == EXPECTED_FRESH


# ---- backward's arguments, as torch ---------------------------------------------------------
def test_backward_with_empty_inputs_raises_torchs_error():
    x = t.tensor([1., 2.], requires_grad=True)
    y = (x * 2).sum()
    with pytest.raises(RuntimeError, match=r"^`inputs` argument to `backward\(\)` cannot be empty\.$"):
        y.backward(inputs=[])
    with pytest.raises(RuntimeError, match=r"`inputs` argument to `backward\(\)` cannot be empty"):
        t.autograd.backward(y, inputs=())
    with pytest.raises(RuntimeError, match=r"^`inputs` argument to `grad\(\)` cannot be empty\.$"):
        t.autograd.grad(y, [])
    y.backward(inputs=[x])          # nothing was consumed by the failed calls
    assert x.grad.tolist() == [2., 2.]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_integer_and_bool_gradients_are_cast_as_torch(dtype):
    x = t.tensor(np.array([1., 2.], dtype), requires_grad=True)
    (x * 2).backward(t.tensor([1, 2]))
    assert x.grad.tolist() == [2., 4.] and x.grad.dtype == x.dtype
    x.grad = None
    (x * 2).backward(t.tensor([True, False]))
    assert x.grad.tolist() == [2., 0.]
    x.grad = None
    t.autograd.backward([x * 3], [t.tensor([1, 1], dtype=t.int32)])
    assert x.grad.tolist() == [3., 3.]


# ---- 8. float32 gradients do not depend on float64 graphs ------------------------------------
_F32_SCRIPT = r"""
import threading
import numpy as np
import jitgrad as t

def f32_grads():
    rng = np.random.default_rng(0)
    w = t.tensor(rng.standard_normal((5, 4)).astype(np.float32) * 3, requires_grad=True)
    x = t.tensor(rng.standard_normal((7, 5)).astype(np.float32))
    b = t.tensor(np.float32(0.1), requires_grad=True)
    h = (x @ w + b).tanh()
    loss = (h ** 2).mean() + (w.exp() / 7).sum() + t.nn.functional.softmax(h, 1).log().mean()
    loss.backward()
    return w.grad.numpy().copy(), b.grad.numpy().copy()

alone = f32_grads()
keep = (t.randn(5, dtype=t.float64, requires_grad=True) * 2).exp()   # a live float64 graph
same_thread = f32_grads()
ready, done = threading.Event(), threading.Event()
def other():
    y = (t.randn(3, dtype=t.float64, requires_grad=True) ** 2).sum()
    ready.set()
    done.wait(60)
    y.backward()
th = threading.Thread(target=other)
th.start()
ready.wait(60)
other_thread = f32_grads()
done.set()
th.join()
for got in (same_thread, other_thread):
    for a, b in zip(alone, got):
        assert a.dtype == np.float32 and a.tobytes() == b.tobytes(), (a, b)
keep.sum().backward()
print("ok")
"""


def test_float32_gradients_do_not_depend_on_a_live_float64_graph():
    import subprocess
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(t.__file__)))] +
        [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, "-c", _F32_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_a_float32_graph_replays_in_float32_beside_a_float64_one():
    keep = (t.randn(5, dtype=t.float64, requires_grad=True) * 2).exp()
    x = t.tensor(np.array([1e-4, 3., 7.], np.float32), requires_grad=True)
    ((x * np.float32(1.1)).exp() + 1).log().sum().backward()
    # the same computation, in float32 numpy: the rules' arithmetic in float32
    xa = np.array([1e-4, 3., 7.], np.float32)
    e = np.exp(xa * np.float32(1.1))
    expect = (np.float32(1) / (e + np.float32(1))) * e * np.float32(1.1)
    np.testing.assert_allclose(x.grad.numpy(), expect, rtol=1e-6)
    assert x.grad.dtype == t.float32
    keep.sum().backward()


MIXED_CASES = {
    "f32_times_f64": lambda m, a, b: (a * b).sum(),
    "cast_up": lambda m, a, b: (a.double() * b).exp().sum(),
    "cast_down": lambda m, a, b: (a * b.float()).tanh().sum() + (b ** 2).sum(),
    "broadcast_mixed": lambda m, a, b: (a.reshape(3, 1) + b).pow(2).mean(),
}


@pytest.mark.parametrize("name", sorted(MIXED_CASES))
def test_mixed_dtype_graphs_match_torch(name):
    torch = pytest.importorskip("torch")
    fn = MIXED_CASES[name]
    a0 = np.array([0.5, -1.25, 2.], np.float32)
    b0 = np.array([1.5, 0.25, -0.75], np.float64)
    grads = []
    for m in (t, torch):
        a = m.tensor(a0, requires_grad=True)
        b = m.tensor(b0, requires_grad=True)
        fn(m, a, b).backward()
        grads.append((a.grad.numpy(), b.grad.numpy()))
    for got, want in zip(grads[0], grads[1]):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=2e-6)


def test_mixed_dtype_graph_gradcheck_and_compaction():
    b = t.tensor([1.5, 0.25, -0.75], dtype=t.float64, requires_grad=True)
    c = t.tensor([0.5, 2., 3.], requires_grad=True)               # float32, in the graph too
    keep = (c * 2).exp() * b                                        # mixed, kept across compaction
    assert t.autograd.gradcheck(lambda v: (v * c.detach().double()).sin() * v, (b,))
    TAPE.compact()
    keep.sum().backward()
    np.testing.assert_allclose(b.grad.numpy(), np.exp(2 * np.array([0.5, 2., 3.])), rtol=1e-6)
    np.testing.assert_allclose(c.grad.numpy(),
                               2 * np.exp(2 * np.array([.5, 2., 3.], np.float32)) * [1.5, .25, -.75],
                               rtol=1e-6)


def test_storage_replaced_hook_guards_a_non_leaf():
    # what the ``data`` setter calls when a recorded non-leaf's storage changes shape
    x = t.randn(3, requires_grad=True)
    y = x * 2
    y._a = np.ones(1_000_000, np.float32)
    TAPE.storage_replaced(y, (3,))
    assert y.grad_fn.name() == "MulBackward0"
    z = (y * 3).sum()
    TAPE.compact()
    with pytest.raises(RuntimeError, match=r"Function MulBackward0 returned an invalid gradient "
                                           r"at index 0 - got \[1000000\] but expected shape "
                                           r"compatible with \[3\]"):
        z.backward()
    assert x.grad is None
    assert _fresh_grads() == EXPECTED_FRESH


def test_data_setter_of_another_shape_on_a_non_leaf_raises_torchs_error():
    # the same through the real setter: the compiled replay never sees the new size
    x = t.randn(3, requires_grad=True)
    y = x * 2
    y.data = t.randn(1_000_000)
    z = (y * 3).sum()
    with pytest.raises(RuntimeError, match=r"Function MulBackward0 returned an invalid gradient "
                                           r"at index 0 - got \[1000000\] but expected shape "
                                           r"compatible with \[3\]"):
        z.backward()
    assert x.grad is None
    w = t.randn(3, requires_grad=True)       # the engine is as usable as before
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), 2 * w.detach().numpy(), rtol=1e-6)


def test_a_row_that_does_not_fit_int64_is_refused_whole():
    """An attribute past int64 raises OverflowError before anything is appended."""
    x = t.ones(3, requires_grad=True)
    rows, outs = len(TAPE.rows), len(TAPE.outs)
    with pytest.raises(OverflowError, match="does not fit the tape's int64 row"):
        TAPE.append(1, -1, -1, -1, (3,), 2 ** 70, 0, 0, None)
    assert (len(TAPE.rows), len(TAPE.outs)) == (rows, outs)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_compact_while_a_backward_is_paused_waits():
    """A hook calling compact() mid-backward (row numbers in flight: the tape is pinned) leaves
    the rows as they are; it renumbered them under the replay before (a segfault)."""
    w = t.randn(3, 3, requires_grad=True)
    x = t.randn(4, 3)
    keep = [x @ w for _ in range(50)]
    del keep
    out = (x @ w).tanh()
    rows = []

    def hook(g):
        rows.append(len(TAPE.outs))
        TAPE.compact()
        rows.append(len(TAPE.outs))
        return g
    out.register_hook(hook)
    (out ** 2).sum().backward()
    assert rows[0] == rows[1]
    np.testing.assert_allclose(w.grad.numpy(), (x.numpy().T @ (2 * out.detach().numpy() *
                                                               (1 - out.detach().numpy() ** 2))),
                               rtol=1e-5)
