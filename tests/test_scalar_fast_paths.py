"""The 0-dim fast paths of the small ops (Python float arithmetic, item stores into the arena,
the compiled scalar tanh) give what numpy's general path gives, bit for bit, recorded or not."""
import warnings

import numpy as np
import pytest

import jitgrad

VALUES = [0.0, -0.0, 1.0, -2.5, 0.1, 3.0, 1e308, -1e308, 5e-324, 2.2250738585072014e-308,
          np.inf, -np.inf, np.nan, -np.nan]


def _bits(a):
    return np.asarray(a, np.float64).tobytes()


def _numpy(op, x, y):
    with np.errstate(all="ignore"):
        return {"add": np.add, "sub": np.subtract, "mul": np.multiply,
                "div": np.true_divide}[op](np.asarray(x), y)


def _t(v, rg=False):
    return jitgrad.tensor(np.asarray(v, np.float64), requires_grad=rg)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("rg", [False, True])
def test_binary_0dim_float64_bit_for_bit(op, rg):
    fn = getattr(jitgrad, op)
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # the fast paths must not warn where numpy is quiet
        for x in VALUES:
            for y in VALUES:
                for other in (_t(y), float(y)):
                    out = fn(_t(x, rg), other)
                    assert out.dtype == jitgrad.float64 and out.shape == ()
                    assert type(out._a) is np.ndarray
                    assert _bits(out._a) == _bits(_numpy(op, x, np.asarray(y))), (op, x, y)
                    assert (out.grad_fn is not None) == rg


def test_neg_0dim_float64_bit_for_bit():
    for x in VALUES:
        out = -_t(x, True)
        assert _bits(out._a) == _bits(np.negative(np.asarray(x)))
        assert out.grad_fn.name() == "NegBackward0"


def test_tanh_0dim_float64_is_the_vectorised_kernel():
    xs = np.array([v for v in VALUES] + list(np.linspace(-25, 25, 201)), np.float64)
    whole = jitgrad.tensor(xs).tanh()._a       # the array path: the compiled kernel
    for i, v in enumerate(xs):
        out = _t(v, True).tanh()
        assert out.shape == () and out.dtype == jitgrad.float64
        assert _bits(out._a) == _bits(whole[i]), v


def test_0dim_gradients_and_saved_values():
    w, b = _t(0.9999, True), _t(1e-4, True)
    y = _t(1.0)
    for _ in range(50):
        y = (y * w + b) / w - b * 0.5
        y = y.tanh() * 2.0
    y.backward()
    w64, b64 = jitgrad.tensor(np.full(1, 0.9999), requires_grad=True), \
        jitgrad.tensor(np.full(1, 1e-4), requires_grad=True)
    y = jitgrad.tensor(np.ones(1))
    for _ in range(50):       # the same graph on 1-element vectors: numpy's path throughout
        y = (y * w64 + b64) / w64 - b64 * 0.5
        y = y.tanh() * 2.0
    y.sum().backward()
    assert w.grad.item() == w64.grad.item() and b.grad.item() == b64.grad.item()


def test_0dim_in_place_check_still_fires():
    w = _t(2.0, True)
    x = _t(3.0, True) * 1.0
    y = x * w                  # saves x (a non-leaf) and w
    x.add_(1.0)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


@pytest.mark.parametrize("name, v", [("exp", 1000.0), ("log", -1.0), ("log", 0.0), ("sqrt", -1.0),
                                     ("reciprocal", 0.0)])
@pytest.mark.parametrize("shape", [(), (2,)])
def test_unary_silent_when_numpy_would_warn_or_raise(name, v, shape):
    x = np.full(shape, v)
    with np.errstate(all="ignore"):
        want = getattr(np, name)(x)
    for strict in ("warnings", "seterr"):
        with warnings.catch_warnings(), np.errstate(all="raise" if strict == "seterr" else "warn"):
            warnings.simplefilter("error")
            out = getattr(jitgrad.tensor(x, requires_grad=True), name)()
        assert np.array_equal(out._a, want, equal_nan=True) and out._a.shape == shape


# ---- record_pair: a binary op on two 0-dim float64 tensors that both require grad ------------
def _rows_since(start):
    """The rows appended since row start, as relative rows (their inputs' rows and saved values'
    offsets counted from the first's, serials left out), with the values they saved."""
    from jitgrad.engine.loop import A, B, SAVED_AT, SERIAL, WIDTH
    from jitgrad.engine.tape import TAPE
    out, first = [], None
    for i in range(start, len(TAPE.outs)):
        row = list(TAPE.rows[i * WIDTH: (i + 1) * WIDTH])
        saved = []
        if row[SAVED_AT] >= 0:
            saved = TAPE.arena[row[SAVED_AT]: row[SAVED_AT] + 2].tolist()
            first = row[SAVED_AT] if first is None else first
            row[SAVED_AT] -= first
        for k in (A, B):
            row[k] = row[k] - start if row[k] >= 0 else -1
        del row[SERIAL]
        out.append((row, saved))
    return out


def _scalar_graph(make):
    """A scalar graph through the fast path's cases: leaves (first use and again), non-leaves, an
    operand used twice, Python floats, a constant (requires_grad=False) tensor, int and bool 0-dim
    tensors (promoted by the general path)."""
    w, b = make(0.75, True), make(-0.5, True)
    c = make(3.0, False)
    y = w * b
    y = y + w
    y = y * y
    y = b * y - c
    y = y * jitgrad.tensor(2) + jitgrad.tensor(True)
    y = (y + 0.25) * w
    y = (y - w) / b
    return w, b, y


def test_record_pair_gives_the_general_paths_rows_and_gradients():
    from jitgrad.engine.tape import TAPE
    graphs = []
    for fast in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if not fast:    # anomaly mode wraps Tape.append: record_pair takes record()'s path
                jitgrad.autograd.set_detect_anomaly(True)
            try:
                start = len(TAPE.outs)
                w, b, y = _scalar_graph(_t)
                graphs.append((_rows_since(start), w, b, y))
            finally:
                jitgrad.autograd.set_detect_anomaly(False)
    (rows, w, b, y), (rows2, w2, b2, y2) = graphs
    assert rows == rows2 and len(rows) == 13
    assert y2.grad_fn.name() == y.grad_fn.name() == "DivBackward0"
    assert [(y * w).grad_fn.name(), (y + w).grad_fn.name(), (y - w).grad_fn.name(),
            (y / w).grad_fn.name()] == ["MulBackward0", "AddBackward0", "SubBackward0", "DivBackward0"]
    y.backward()
    y2.backward()
    assert _bits(w.grad._a) == _bits(w2.grad._a) and _bits(b.grad._a) == _bits(b2.grad._a)
    w64, b64, y64 = _scalar_graph(lambda v, rg: jitgrad.tensor(np.full(1, v), requires_grad=rg))
    y64.sum().backward()      # numpy's path throughout
    assert w.grad.item() == w64.grad.item() and b.grad.item() == b64.grad.item()
    assert w.grad.dtype == jitgrad.float64 and w.grad.shape == ()


def test_record_pair_grad_fn_saved_values_and_versions():
    x, w = _t(3.0, True), _t(2.0, True)
    h = x * 1.0
    y = h * w
    assert y.grad_fn.next_functions[0][0] is h.grad_fn
    assert y.grad_fn.next_functions[1][0].name() == "torch::autograd::AccumulateGrad"
    assert w._version == 0 and h._version == 0
    with jitgrad.no_grad():
        w.mul_(2.0)
    assert w._version == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    z = h + w                 # add saves nothing: an in-place write after it is fine
    w.data.add_(1.0)
    z.backward()
    assert x.grad.item() == 1.0 and w.grad.item() == 1.0


@pytest.mark.parametrize("dims", [(), (1,)])
def test_a_tensor_saved_when_its_list_is_pruned_keeps_that_node(dims):
    # the 63rd node to save w pruned w's list of saving nodes before that node's row existed,
    # and dropped it: an in-place write of w then went unnoticed by that node's backward
    w = jitgrad.tensor(np.full(dims, 2.0), requires_grad=True)
    x = jitgrad.tensor(np.full(dims, 3.0), requires_grad=True)
    for n in range(200):
        keep = [x * w for _ in range(n)]
        last = x * w
        with jitgrad.no_grad():
            w.add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            last.sum().backward()
        del keep


def test_record_pair_under_no_grad_and_create_graph():
    w, b = _t(0.5, True), _t(2.0, True)
    with jitgrad.no_grad():
        y = w * b + w
    assert y.grad_fn is None and not y.requires_grad
    y = w * b + w * w
    (gw,) = jitgrad.autograd.grad(y, w, create_graph=True)     # b + 2w, recorded
    assert gw.item() == 3.0 and gw.requires_grad
    (gww,) = jitgrad.autograd.grad(gw, w)
    assert gww.item() == 2.0


def test_record_pair_with_a_leaf_whose_storage_changed_shape():
    w = jitgrad.tensor(np.ones(3), requires_grad=True)
    (w * w).sum()                                   # w's leaf row has shape (3,)
    w.data = _t(4.0)
    y = w * _t(0.5, True)
    y.backward()
    assert w.grad.shape == () and w.grad.item() == 0.5
    w.grad = None
    w.data = jitgrad.tensor(np.ones(2))           # a 0-dim leaf with a row, then another shape
    (w * w).sum().backward()
    w.data = _t(3.0)                              # and 0-dim again
    w.grad = None
    (w * _t(0.5, True) + w).backward()
    assert w.grad.shape == () and w.grad.item() == 1.5


def test_record_pair_across_a_compaction():
    from jitgrad.engine.tape import TAPE
    w, b = _t(0.9, True), _t(0.1, True)
    y = w * b
    old = TAPE.rlimit
    TAPE.rlimit = TAPE.limit = TAPE.pair_until = 0  # the next op compacts first (renumbering the
                                                    # rows, a new outs list)
    try:
        y = y * w
        y = y + b
    finally:
        TAPE.rlimit = max(TAPE.rlimit, old)
    y.backward()
    assert abs(w.grad.item() - 2 * 0.9 * 0.1) < 1e-15 and abs(b.grad.item() - (0.81 + 1)) < 1e-15
    assert y.grad_fn.next_functions[0][0].next_functions[1][0].variable is w


def test_record_pair_inside_compile_replays_as_eager():
    def step(w, b, x):
        y = x
        for _ in range(20):
            y = y * w
            y = y + b
        y.backward()
        return y

    def run(fn):
        w, b = _t(0.9, True), _t(0.1, True)
        out = [fn(w, b, _t(1.5, True)).item() for _ in range(3)]
        return out, w.grad.item(), b.grad.item()

    compiled = jitgrad.compile(step, fullgraph=True)
    assert run(compiled) == run(step)
    assert sum(1 for v in compiled.traces.values() if not isinstance(v, str)) == 1


def test_record_pair_reads_its_own_threads_grad_mode():
    import threading
    from jitgrad.engine.tape import _grad_mode, grad_off
    w, b = _t(0.5, True), _t(2.0, True)
    off, done = threading.Event(), threading.Event()

    def other():
        with jitgrad.no_grad():
            off.set()
            done.wait()
    th = threading.Thread(target=other)
    th.start()
    off.wait()
    try:
        assert grad_off and (w * b).requires_grad and (w + b).grad_fn is not None
        with jitgrad.no_grad():
            assert not (w * b).requires_grad and (w + b).grad_fn is None
    finally:
        done.set()
        th.join()
    assert not grad_off
    _grad_mode.enabled = False          # as Function.apply switches it: listed too
    try:
        assert grad_off and (w * b).grad_fn is None
    finally:
        _grad_mode.enabled = True
    assert not grad_off and (w * b).grad_fn.name() == "MulBackward0"


def test_record_pair_grows_a_full_arena():
    from jitgrad.engine.tape import TAPE
    w, b = _t(0.9, True), _t(0.1, True)
    y = w * b                                  # the arena is float64 now
    for room in (0, 1):                        # neither value fits, or only the first does
        with TAPE.lock:
            TAPE.arena = TAPE.arena[: TAPE.alen + room].copy()
        y = y * w
    y.backward()
    assert abs(w.grad.item() - 3 * 0.81 * 0.1) < 1e-15 and abs(b.grad.item() - 0.729) < 1e-15


def test_a_long_list_of_saving_nodes_is_pruned_of_freed_nodes_only():
    from jitgrad.engine.tape import TAPE
    w, x = _t(2.0, True), _t(3.0, True)
    first = [x * w for _ in range(300)]
    total = first[0]
    for y in first[1:]:
        total = total + y
    total.backward()                          # frees the 300 products' rows
    keep = [x * w for _ in range(600)]        # lists past 256 serials are pruned in numpy
    serials = w._ver[2:]
    assert len(serials) < 800
    probe = serials + [-5, TAPE.serial + 10]        # (serials without a row: dropped)
    assert TAPE._unfreed(probe) == TAPE._replayable(probe)
    with jitgrad.no_grad():
        w.add_(1.0)
    for y in (keep[0], keep[-1]):
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()


@pytest.mark.parametrize("op", ["mul", "div"])
def test_record_pair_saves_its_operands_bit_for_bit(op):
    # record_pair stores the operands' Python floats into the arena (not their 0-d arrays):
    # the saved values are the operands' exact bits
    from jitgrad.engine.loop import SAVED_AT
    from jitgrad.engine.tape import TAPE
    for xv in VALUES:
        for yv in VALUES:
            if op == "div" and yv == 0:
                continue            # (numpy's path: no record_pair)
            x, y = _t(xv, True), _t(yv, True)
            h = x * 1.0             # a non-leaf operand too
            z = h * y if op == "mul" else h / y
            row = TAPE.row(z._node)
            s = row[SAVED_AT]
            arena = TAPE.arena if TAPE.f64 else TAPE.other
            assert _bits(arena[s]) == _bits(yv) and _bits(arena[s + 1]) == _bits(h._a)
